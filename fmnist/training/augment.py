"""Training-time augmentation in NumPy, batch by batch: random shifts, zooms, flips and
perspective warps.

Done here rather than with Keras' preprocessing layers for two reasons measured on this
project: TensorFlow's image-transform ops added about 20 s to a 24 s epoch on a 2-core CPU,
where this costs well under a second; and the model that gets logged and served is the
plain network, with no augmentation layers inside it.
"""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np

from fmnist.config import SIZE, Augment
from fmnist.photos.preprocess import frame


def shift(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by up to `fraction` of its side in x and y, whole pixels, black fill."""
    n, h, w = images.shape[:3]
    p = round(fraction * h)
    if not p:
        return images
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    dy, dx = rng.integers(0, 2 * p + 1, (2, n))
    rows = dy[:, None, None] + np.arange(h)[None, :, None]
    cols = dx[:, None, None] + np.arange(w)[None, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


def zoom(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Each image scaled about its centre by a factor in [1 - fraction, 1 + fraction]."""
    h, w = images.shape[1:3]
    out = np.empty_like(images)
    for i, s in enumerate(rng.uniform(1 - fraction, 1 + fraction, len(images))):
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, float(s))
        out[i, ..., 0] = cv2.warpAffine(images[i, ..., 0], m, (w, h), flags=cv2.INTER_LINEAR)
    return out


def perspective(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Half of the images seen from another angle: each corner moved by up to `fraction` of
    the side, then framed again as a photo is (`fmnist.photos.preprocess.frame`: cropped to the
    garment, longest side filling the frame, centred). Real photos are flat-lays and hangers
    shot at an angle, with sleeves spread and pairs of shoes seen from above; this is the
    augmentation that moved real-photo accuracy most (docs/predict.md)."""
    out = images.copy()
    pad = SIZE // 2
    side = SIZE + 2 * pad
    corners = np.float32([[0, 0], [SIZE - 1, 0], [SIZE - 1, SIZE - 1], [0, SIZE - 1]]) + pad
    for i in np.flatnonzero(rng.random(len(images)) < 0.5):
        moved = corners + rng.uniform(-fraction, fraction, (4, 2)).astype(np.float32) * SIZE
        m = cv2.getPerspectiveTransform(corners, moved)
        warped = cv2.warpPerspective(np.pad(images[i, ..., 0], pad), m, (side, side), flags=cv2.INTER_LINEAR)
        out[i, ..., 0] = refit(warped)
    return out


def refit(image: np.ndarray) -> np.ndarray:
    """Crop to the garment and centre it, longest side SIZE pixels, as photos are framed."""
    mask = image > 0.02
    if mask.sum() < 4:  # warped out of sight: nothing to frame
        return np.zeros((SIZE, SIZE), image.dtype)
    square = frame(image, mask, 0.0)
    # Area averaging when shrinking, as photos are resized; a warp that shrank the garment
    # is enlarged linearly, where area interpolation would copy pixels into blocks.
    shrinking = square.shape[0] > SIZE
    return cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half of the images mirrored left to right."""
    out = images.copy()
    mirrored = rng.random(len(images)) < 0.5
    out[mirrored] = out[mirrored, :, ::-1]
    return out


def augment(images: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    if aug.perspective:
        images = perspective(images, aug.perspective, rng)
    if aug.zoom:
        images = zoom(images, aug.zoom, rng)
    if aug.shift:
        images = shift(images, aug.shift, rng)
    return flip(images, rng) if aug.flip else images


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled training batches, augmented afresh every epoch; seeded, so runs repeat."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, aug: Augment, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.aug = x, y, batch_size, aug
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        picked = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return augment(self.x[picked], self.aug, self.rng), self.y[picked]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))
