"""A photo of a garment -> a Fashion-MNIST-like 28x28 input.

Fashion-MNIST was made from shop photos: trimmed to the product, the longest side scaled
to 28 pixels, centred, intensities negated, grayscale. A phone photo of a shirt on a
carpet looks nothing like that, which is why the original recipe (grayscale, resize,
divide by 255) got almost none right. Each step below undoes one difference; the
settings live in conf/photo/ and conf/limits/. The image itself is read by
fmnist/images/reading.py.

Only NumPy, OpenCV and pydantic are imported, so the served model (fmnist/serving/) carries
the same code without the training stack.
"""

from __future__ import annotations

import cv2
import numpy as np

from fmnist.config import SIZE, Mode, PhotoSettings
from fmnist.images.reading import Photo


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
