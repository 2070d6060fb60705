"""A photo of a garment -> a Fashion-MNIST-like 28x28 input.

Fashion-MNIST was made from shop photos: trimmed to the product, the longest side scaled
to 28 pixels, centred, intensities negated, grayscale. A phone photo of a shirt on a
carpet looks nothing like that, which is why the original recipe (grayscale, resize,
divide by 255) got almost none right. Each step below undoes one difference; the
settings live in fmnist/conf/photo/ and fmnist/conf/limits/.

Only NumPy, OpenCV, Pillow and pydantic are imported, so the served model (fmnist.photos.serving)
carries the same code without the training stack.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist.config import SIZE, Limits, Mode, PhotoSettings
from fmnist.errors import ImageError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# The only decoders Pillow may run: it knows dozens of formats, some through outside programs
# (an EPS reaches Ghostscript), and a photo needs none of them.
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
ACCEPTED = "JPEG, PNG, BMP, WebP, TIFF"
# What a path that is not a regular file is, for its error row.
NOT_FILES = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"))


@dataclass(frozen=True)
class Photo:
    """A decoded image: RGB uint8, plus the alpha channel when it carries a cut-out."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    note: str = ""  # something the user should know, though the image was read (CMYK)


# ---- reading ----------------------------------------------------------------------------

def open_image(source: str | Path | bytes, limits: Limits, target: int | None = None) -> Image.Image:
    """Open lazily with the allowed decoders only, and check the size from the header,
    before any pixel is decoded. With `target`, set to decode at no more than ~2x `target`
    (JPEG's DCT scaling makes large photos cheap), so that `size` is what decoding will make."""
    data = read_bytes(source, limits)
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image too large to decode safely ({str(e).split(', could')[0]})") from None
    except Exception as e:  # noqa: BLE001 - a hostile header raises many kinds (a zTXt bomb: ValueError)
        raise ImageError(unreadable(data, e)) from None
    w, h = image.size
    if w * h > limits.max_pixels:
        raise ImageError(f"image is {w}x{h}, above limits.max_pixels={limits.max_pixels}")
    if min(w, h) < limits.min_side:
        raise ImageError(f"image is {w}x{h}, below limits.min_side={limits.min_side}")
    if target:
        image.draft("RGB", (2 * target, 2 * target))
    return image


def decoded_pixels(source: str | Path | bytes, limits: Limits, target: int) -> int:
    """How many pixels `read_image(source, limits, target)` would decode, from the header
    alone (a large JPEG counts at the reduced scale it is decoded at)."""
    with image_errors():
        w, h = open_image(source, limits, target).size
    return w * h


def read_bytes(source: str | Path | bytes, limits: Limits) -> bytes:
    """The file's bytes, refused above limits.max_bytes before they are read (a path) or
    decoded (bytes): memory stays bounded whatever a file or a client sends."""
    if isinstance(source, bytes):
        data = source
    else:
        with open_regular(source) as f:
            check_bytes(os.fstat(f.fileno()).st_size, limits)
            data = f.read(limits.max_bytes + 1)  # a file that grew
    check_bytes(len(data), limits)
    return data


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file. A FIFO would block `open` until a
    writer came (forever), a device can be endless or act on being opened, so anything else is
    refused from `stat`, before it is opened; O_NONBLOCK and a second look at the opened file
    close the race where a FIFO takes the file's place in between."""
    check_regular(os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        check_regular(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def check_regular(mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in NOT_FILES if test(mode)), "special file")
        raise ImageError(f"a {kind}, not a regular file")


def check_bytes(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise ImageError(f"file is {size} bytes, above limits.max_bytes={limits.max_bytes}")


def signature(data: bytes) -> str | None:
    """The format the first bytes show, when one of Pillow's cheap signature checks knows it
    (no decoder of it runs)."""
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            known = accept is not None and accept(prefix)
        except Exception:  # noqa: BLE001 - a check that needs more bytes than a short file has
            known = False
        if known and not isinstance(known, str):  # a str: Pillow's "known, but unsupported"
            return name
    return None


def unreadable(data: bytes, error: Exception) -> str:
    """Why Pillow, held to FORMATS, opened nothing: a format off the list, a corrupt header of
    one on it (Pillow's reason, when it gave one), or not an image at all."""
    name = signature(data)
    if name is None:
        return f"not an image in a readable format ({ACCEPTED})"
    if name not in FORMATS:
        return f"{name} is not an accepted format ({ACCEPTED})"
    why = "" if isinstance(error, UnidentifiedImageError) else f" ({reason(error)})"
    return f"corrupt {name} header{why}"


def reason(error: BaseException) -> str:
    """An exception as one line: its message's first line, else its type's name."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def decode(image: Image.Image) -> Photo:
    """All pixels, upright. An EXIF block that cannot be parsed costs only its orientation:
    the pixels are fine, so the photo is still read, with a note."""
    try:
        image.load()
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many kinds on malformed files
        raise ImageError(f"corrupt or truncated image ({reason(e)})") from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as e:  # noqa: BLE001 - junk EXIF: SyntaxError, struct.error, ValueError...
        return split_alpha(image, f"EXIF data unreadable ({reason(e)}), orientation not applied")
    return split_alpha(image)


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float grayscale (PNG, TIFF) -> 8-bit by scaling, not clipping."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(image, dtype=np.float32)
        return Image.fromarray((a * (255.0 / (65535.0 if a.max() > 255 else 255.0))).clip(0, 255).astype(np.uint8))
    if image.mode == "F":
        a = np.asarray(image, dtype=np.float32)
        a = a / a.max() if a.max() > 1 else a
        return Image.fromarray((a * 255).clip(0, 255).astype(np.uint8))
    return image


def split_alpha(image: Image.Image, note: str = "") -> Photo:
    """RGB pixels plus an alpha mask when some pixels are transparent (a ready cut-out)."""
    image = to_8bit(image)
    if image.mode == "CMYK":
        note = "; ".join(filter(None, ["CMYK image, converted to RGB (colours approximate)", note]))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return Photo(np.asarray(image.convert("RGB")), note=note)
    rgba = np.asarray(image.convert("RGBA"))
    alpha = rgba[..., 3]
    return Photo(rgba[..., :3].copy(), alpha if alpha.min() < 128 else None, note)


def read_image(source: str | Path | bytes, limits: Limits, target: int = 160) -> Photo:
    """File or bytes -> Photo; every failure is an ImageError naming the problem."""
    with image_errors():
        return decode(open_image(source, limits, target))


@contextmanager
def image_errors() -> Iterator[None]:
    """Whatever reading or preparing one image raises becomes that image's ImageError, so a
    hostile file is one row of a run or a request, never its end: Pillow, OpenCV, NumPy and
    the OS raise more kinds than any list here would keep up with."""
    try:
        yield
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder") from None
    except OSError as e:
        raise ImageError(f"cannot read ({e.strerror or reason(e)})") from None
    except Exception as e:  # noqa: BLE001 - see above; the type's name helps a report
        raise ImageError(f"cannot process this image ({type(e).__name__}: {reason(e)})") from None


# ---- the photo steps --------------------------------------------------------------------

def shrink(photo: Photo, size: int) -> Photo:
    """Longest side to `size` with area interpolation: segmentation cost grows with pixels."""
    h, w = photo.rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return photo
    dsize = (max(1, round(w * scale)), max(1, round(h * scale)))
    alpha = None if photo.alpha is None else cv2.resize(photo.alpha, dsize, interpolation=cv2.INTER_AREA)
    return Photo(cv2.resize(photo.rgb, dsize, interpolation=cv2.INTER_AREA), alpha)


def segment(rgb: np.ndarray, s: PhotoSettings) -> np.ndarray:
    """Garment vs background by GrabCut: colour models learnt from a frame (background) and
    the centre (garment), then a graph cut that follows edges. Works on light, dark and
    textured backgrounds alike, where a threshold would not."""
    h, w = rgb.shape[:2]
    mask = rect_mask(h, w, s.border)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: same photo, same mask
    try:
        cv2.grabCut(rgb, mask, None, bgd, fgd, s.grabcut_iters, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # too few pixels of one kind to learn colours from (a tiny image)
        return np.zeros((h, w), np.uint8)
    return np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)


def rect_mask(h: int, w: int, border: float) -> np.ndarray:
    bx, by = max(1, round(w * border)), max(1, round(h * border))
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[by: h - by, bx: w - bx] = cv2.GC_PR_FGD
    return mask


def smooth(mask: np.ndarray, share: float) -> np.ndarray:
    """Open then close: drop specks, fill thin gaps (seams, prints close to the background)."""
    k = max(1, round(share * max(mask.shape)))
    if k < 2:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)


def keep_garment(mask: np.ndarray, min_part: float) -> np.ndarray:
    """The largest region and any nearly as large (a pair of shoes), holes filled."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= min_part * areas.max())
    kept = np.isin(labels, keep).astype(np.uint8) * 255
    return fill_holes(kept)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Regions the outside cannot reach are garment (a print that matched the background)."""
    outside = np.pad(mask, 1)
    cv2.floodFill(outside, None, (0, 0), 255)
    return mask | (255 - outside[1:-1, 1:-1])


def garment_mask(photo: Photo, s: PhotoSettings) -> np.ndarray:
    """The cut-out the image came with, else one made by segmentation; never empty."""
    if photo.alpha is not None:
        raw = np.where(photo.alpha >= 128, 255, 0).astype(np.uint8)
    else:
        raw = segment(photo.rgb, s)
    mask = keep_garment(smooth(raw, s.smooth), s.min_part)
    if mask.sum() < 0.01 * 255 * mask.size:  # nothing found: fall back to the whole frame
        return np.full_like(mask, 255)
    return mask


def negate(rgb: np.ndarray, mask: np.ndarray, s: PhotoSettings) -> np.ndarray:
    """Grayscale, negated as Fashion-MNIST did (dark cloth bright), background black, and the
    garment's tones stretched so its brightest part is white: lighting varies, the dataset's
    exposure does not. Contrast grows at most to `min_contrast`, so a plain garment stays
    plain (and bright) instead of its noise being stretched. float32 in [0, 1]."""
    gray = 1.0 - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    lo, hi = np.percentile(gray[mask > 0], (2, 98))
    span = max(hi - lo, s.min_contrast)
    scaled = s.floor + (1.0 - s.floor) * np.clip((gray - (hi - span)) / span, 0.0, 1.0)
    return np.where(mask > 0, scaled, 0.0).astype(np.float32)


def frame(image: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """Crop to the garment and centre it on a black square, its longest side filling the
    frame (less `margin`) as in Fashion-MNIST, aspect kept. Gray (H, W) or colour (H, W, 3)."""
    ys, xs = np.nonzero(mask)
    crop = image[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape[:2]
    side = round(max(h, w) / (1.0 - 2 * margin))
    square = np.zeros((side, side, *crop.shape[2:]), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top: top + h, left: left + w] = crop
    return square


def to_input(square: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Area-interpolated resize to size x size (averaging, no aliasing), float32 in [0, 1]."""
    return np.clip(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA), 0.0, 1.0).astype(np.float32)


def photo_to_input(photo: Photo, s: PhotoSettings) -> np.ndarray:
    """The photo steps end to end: shrink, segment, negate (or keep the colours on black),
    frame, resize. `plain` skips segmentation: the whole photo, framed square."""
    small = shrink(photo, s.work_size)
    if s.input == "plain":
        whole = np.full(small.rgb.shape[:2], 255, np.uint8)
        return to_input(frame(small.rgb / np.float32(255), whole, 0.0), s.size)
    mask = garment_mask(small, s)
    image = negate(small.rgb, mask, s) if s.input == "fmnist" else np.where(mask[..., None] > 0, small.rgb / 255, 0)
    return to_input(frame(image, mask, s.margin), s.size)


# ---- images that already are Fashion-MNIST-like ------------------------------------------

def is_fmnist_like(photo: Photo) -> bool:
    """28x28, gray, dark border: a Fashion-MNIST image or one made like them."""
    rgb = photo.rgb
    if rgb.shape[:2] != (SIZE, SIZE):
        return False
    gray_enough = np.ptp(rgb.astype(np.int16), axis=2).max() <= 8
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return bool(gray_enough and border.mean() < 40)


def fmnist_to_input(photo: Photo) -> np.ndarray:
    """Already the dataset's look: grayscale, resized if needed, scaled to [0, 1]."""
    gray = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY)
    if gray.shape != (SIZE, SIZE):
        gray = cv2.resize(gray, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32) / 255.0


def blank(s: PhotoSettings) -> np.ndarray:
    """An all-black input of the shape `prepare` returns: the stand-in for an unreadable image."""
    return np.zeros(s.shape if s.shape[-1] == 3 else s.shape[:2], np.float32)


def prepare(photo: Photo, mode: Mode, s: PhotoSettings) -> np.ndarray:
    """The model input, float32 in [0, 1], for one decoded image: (size, size) for the
    Fashion-MNIST look, (size, size, 3) for colour inputs. Images that already look like
    Fashion-MNIST skip the photo steps when the model takes that look at 28x28."""
    fmnist_model = s.input == "fmnist" and s.size == SIZE
    if fmnist_model and (mode == "fmnist" or (mode == "auto" and is_fmnist_like(photo))):
        return fmnist_to_input(photo)
    return photo_to_input(photo, s)
