"""Training-time augmentation, in two places:

- Flips and shifts are layers in front of the network in the model that `fit` trains
  (`trained_model`), so they run inside the compiled training step on whatever device trains,
  with no Python call per batch. The model that gets logged and served is the plain network.
- Zooms and perspective warps need OpenCV (a warp re-frames the garment as a photo is framed),
  so they are made on the host in NumPy, batch by batch (`WarpedBatches`), before those layers.

Keras' `RandomTranslation` resamples through an image-projective transform, which cost about
20 s of a 24 s epoch on a 2-core CPU; `RandomShift` moves whole pixels with two small matrix
products instead.
"""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np
from keras import layers, ops

from fmnist.config import SIZE, Augment
from fmnist.images.preprocess import frame


class RandomShift(layers.Layer):
    """Each image moved by whole pixels, up to `fraction` of its side in x and in y, black
    fill, in training only. Row i of the result is row i + dy of the image: a product with a
    shifted identity matrix per image, then the same for columns; exact and cheap next to a
    convolution, on every backend."""

    def __init__(self, fraction: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fraction = fraction
        self.seeds = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):  # noqa: ANN001, ANN201
        p = round(self.fraction * x.shape[1])
        if not training or not p:
            return x
        n = ops.shape(x)[0]

        def shifted_identity(side: int):  # noqa: ANN202
            d = keras.random.randint((n, 1, 1), -p, p + 1, seed=self.seeds)
            return ops.cast(ops.arange(side)[None, :, None] + d == ops.arange(side)[None, None, :], x.dtype)

        rows = ops.einsum("nij,njkc->nikc", shifted_identity(x.shape[1]), x)
        return ops.einsum("nikc,nlk->nilc", rows, shifted_identity(x.shape[2]))


class Augmented(keras.Sequential):
    """Augmentation layers, then the network. Weights saved during `fit` are the network's
    alone, so a checkpoint loads into the plain network (keras-tuner's Hyperband continues a
    trial from one)."""

    def save_weights(self, filepath: str, overwrite: bool = True, **kwargs) -> None:  # noqa: ANN003
        self.layers[-1].save_weights(filepath, overwrite=overwrite, **kwargs)


def trained_model(model: keras.Model, aug: Augment | None, steps_per_execution: int, seed: int) -> keras.Model:
    """What `fit` trains: `model` behind the flip and shift layers `aug` asks for, sharing its
    weights and optimizer, compiled to run `steps_per_execution` batches per call from Python."""
    steps = [aug and aug.flip and layers.RandomFlip("horizontal", seed=seed),
             aug and aug.shift and RandomShift(aug.shift, seed=seed + 1)]  # seeds of their own: independent draws
    steps = [s for s in steps if s]
    trained = Augmented([keras.Input(model.input_shape[1:]), *steps, model]) if steps else model
    trained.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                    steps_per_execution=steps_per_execution)
    return trained


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
    the side, then framed again as a photo is (`fmnist.images.preprocess.frame`: cropped to the
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


def warp(images: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """The host-side steps `aug` asks for: perspective warps, then zooms."""
    if aug.perspective:
        images = perspective(images, aug.perspective, rng)
    return zoom(images, aug.zoom, rng) if aug.zoom else images


class WarpedBatches(keras.utils.PyDataset):
    """Shuffled training batches, warped afresh every epoch; seeded, so runs repeat."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, aug: Augment, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.aug = x, y, batch_size, aug
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        picked = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return self.transform(self.x[picked]), self.y[picked]

    def transform(self, images: np.ndarray) -> np.ndarray:
        """A batch's images as training sees them."""
        return warp(images, self.aug, self.rng)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))
