"""An image file (or a client's bytes) -> its pixels, safely.

Whatever a user points predict at, or a client sends the served model, is read here: only
regular files, only the decoders a photo needs, sizes checked from the header before any
pixel is decoded, and every failure one `ImageError` naming the problem (that image's row,
never the end of a run or a request).

Only NumPy, Pillow and pydantic are imported, so the served model (fmnist/serving/) carries
the same code without the training stack.
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

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist.config import Limits
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
