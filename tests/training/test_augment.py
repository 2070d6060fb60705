"""Training-time augmentation on real Fashion-MNIST images: what each step may and may not do."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist.config import Augment, Config, validate
from fmnist.config.loading import compose
from fmnist.training.augment import RandomShift, WarpedBatches, perspective, trained_model, warp, zoom
from fmnist.training.data import load_splits
from fmnist.training.model import build_model


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    s = load_splits(subset=1000, seed=0)
    return s.x_train[:256], s.y_train[:256]


def test_shift_moves_whole_pixels_within_the_limit_and_only_in_training(images):
    x, _ = images
    moved = np.asarray(RandomShift(0.1, seed=0)(x, training=True))
    assert moved.shape == x.shape and moved.dtype == x.dtype
    for before, after in zip(x[:32], moved[:32], strict=True):  # the same pixels, somewhere within 3 px
        assert any(np.array_equal(np.roll(np.pad(before, ((3, 3), (3, 3), (0, 0))), (dy, dx), (0, 1))[3:-3, 3:-3], after)
                   for dy in range(-3, 4) for dx in range(-3, 4))
    assert np.mean([not np.array_equal(a, b) for a, b in zip(moved, x, strict=True)]) > 0.8
    np.testing.assert_array_equal(np.asarray(RandomShift(0.1, seed=0)(x, training=False)), x)


def test_the_shift_repeats_with_its_seed(images):
    x, _ = images
    a, b, c = (np.asarray(RandomShift(0.1, seed=s)(x, training=True)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_the_trained_model_flips_and_shifts_in_front_of_the_plain_network():
    net = build_model(validate(Config, compose("train", ["experiment=quick"])).model)
    aug = Augment(flip=True, mirror_average=True, shift=0.05, zoom=0.0, perspective=0.0)
    trained = trained_model(net, aug, steps_per_execution=4, seed=0)
    assert [type(layer).__name__ for layer in trained.layers] == ["RandomFlip", "RandomShift", "Functional"]
    assert trained.layers[-1] is net and trained.optimizer is net.optimizer
    off = Augment(flip=False, mirror_average=True, shift=0.0, zoom=0.0, perspective=0.0)
    assert trained_model(net, off, steps_per_execution=1, seed=0) is net


def test_zoom_keeps_shape_range_and_centre(images):
    x, _ = images
    out = zoom(x, 0.1, np.random.default_rng(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1

    def centre(a: np.ndarray) -> np.ndarray:
        w = a[..., 0].sum()
        return np.array([(a[..., 0].sum(1) * np.arange(28)).sum() / w, (a[..., 0].sum(0) * np.arange(28)).sum() / w])

    assert all(np.abs(centre(a) - centre(b)).max() < 1.5 for a, b in zip(out[:32], x[:32], strict=True))


def extent(image: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(image[..., 0] > 0.02)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_perspective_warps_half_and_frames_them_like_photos(images):
    x, _ = images
    out = perspective(x, 0.15, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= 0 and out.max() <= 1
    warped = [i for i in range(len(x)) if not np.array_equal(out[i], x[i])]
    assert 0.35 < len(warped) / len(x) < 0.65
    for i in warped[:64]:  # re-framed: longest side fills the frame, centred, still bright
        h, w = extent(out[i])
        assert max(h, w) >= 27
        ys, xs = np.nonzero(out[i, ..., 0] > 0.02)
        assert abs((ys.min() + ys.max()) / 2 - 13.5) <= 1.5 and abs((xs.min() + xs.max()) / 2 - 13.5) <= 1.5
        assert out[i].max() > 0.5 * x[i].max()
    shapes = np.array([np.divide(*extent(out[i])) / np.divide(*extent(x[i])) for i in warped])
    assert np.abs(np.log(shapes)).mean() > 0.05, "the warp changes garments' proportions"


def test_batches_cover_every_image_once_per_epoch_and_repeat_with_the_seed(images):
    x, y = images
    aug = Augment(flip=True, mirror_average=True, shift=0.1, zoom=0.1, perspective=0.15)
    a, b = WarpedBatches(x, y, 100, aug, seed=3), WarpedBatches(x, y, 100, aug, seed=3)
    assert len(a) == 3
    first, second = [a[i] for i in range(len(a))], [b[i] for i in range(len(b))]
    assert sorted(np.concatenate([labels for _, labels in first])) == sorted(y)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(first, second, strict=True))
    order = a.order.copy()
    a.on_epoch_end()
    assert not np.array_equal(order, a.order), "a new shuffle every epoch"


def test_no_warp_is_the_identity(images):
    x, _ = images
    off = Augment(flip=True, mirror_average=True, shift=0.1, zoom=0.0, perspective=0.0)
    assert warp(x, off, np.random.default_rng(0)) is x
