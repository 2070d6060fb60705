"""An ImageNet backbone for fine-tuning on a user's photos: `finetune.base=imagenet:NAME`, NAME
a `keras.applications` network (MobileNetV3Small, EfficientNetB0, ResNet50, ...).

The network is built without its top, pooled to one feature vector, and its own input scaling
(each family's `preprocess_input`: [-1, 1], torch-style mean and deviation, caffe's BGR mean
subtraction, or none where the network scales inside) is put in front of it as ordinary
layers, so the model takes the photo steps' float RGB in [0, 1] and a `.keras` file of it loads
with `safe_mode` (no Lambda). Its ImageNet weights come from keras.applications, which fetches
them into the Keras cache (~/.keras/models) on first use; where that is impossible the user gets
one line saying so. `weights=None` (random weights) is for the tests: a parameter, not a
setting or an environment variable a user could set by accident and train on noise.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import socket
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np
from keras import layers

from fmnist.config.photos import IMAGENET as PREFIX
from fmnist.errors import ConfigError, NoModelError

FETCH_TIMEOUT_S = 30  # per socket operation: a network that drops packets fails instead of hanging
EXAMPLES = ("MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0", "ResNet50", "Xception")
NEEDS = {"include_top", "weights", "input_shape", "pooling"}


def networks() -> dict[str, Callable[..., keras.Model]]:
    """The keras.applications constructors a backbone can come from: those that build the
    network without its top, pooled, at a given input shape."""
    found = {}
    for name in dir(keras.applications):
        make = getattr(keras.applications, name)
        if callable(make) and not inspect.ismodule(make) and NEEDS <= set(inspect.signature(make).parameters):
            found[name] = make
    return found


def constructor(name: str) -> Callable[..., keras.Model]:
    """The constructor called `name`; an unknown name is one line naming close and common ones."""
    known = networks()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6) or [
        n for n in known if n.lower() == name.lower()]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"finetune.base={PREFIX}{name}: not a keras.applications network; {hint}e.g. "
                      f"{', '.join(n for n in EXAMPLES if n in known)} ({len(known)} in all)")


def family_scaling(make: Callable[..., keras.Model]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """What the network's `preprocess_input` does to a 0-255 RGB pixel, as a per-channel
    (scale, offset) in RGB order and the channel order the network reads (caffe-style
    families read BGR). Measured on probe pixels rather than listed per family, so a
    network added to keras.applications is scaled as its own module says."""
    preprocess = getattr(sys.modules[make.__module__], "preprocess_input", lambda x: x)
    probes = np.concatenate([np.zeros((1, 3)), 255.0 * np.eye(3)]).astype("float32")
    out = np.asarray(preprocess(probes.reshape(4, 1, 1, 3).copy()), dtype="float64").reshape(4, 3)
    offset_out, moved = out[0], out[1:] - out[0]  # moved[k]: the outputs one input channel k moves
    order = [int(np.argmax(np.abs(row))) for row in moved]  # the output channel input channel k lands in
    scale = np.array([moved[k, c] / 255.0 for k, c in enumerate(order)])
    offset = np.array([offset_out[c] for c in order])
    check = np.random.default_rng(0).uniform(0, 255, (2, 1, 1, 3)).astype("float32")
    expected = np.empty((2, 3))
    expected[:, order] = check.reshape(2, 3) * scale + offset
    got = np.asarray(preprocess(check.copy()), dtype="float64").reshape(2, 3)
    if sorted(order) != [0, 1, 2] or np.any(scale <= 0) or not np.allclose(got, expected, rtol=1e-4, atol=1e-3):
        raise ConfigError(f"{make.__name__}: its preprocess_input is not a per-channel scale and offset; "
                          "not supported as a backbone")
    return scale, offset, order


def input_scaling(scale: np.ndarray, offset: np.ndarray) -> list[layers.Layer]:
    """Layers taking [0, 1] RGB to what the network was trained on: 0-255 (the range every
    keras.applications network takes), then the family's per-channel affine map as a
    Normalization ((x - mean) / sqrt(variance)), left out where it is the identity."""
    steps: list[layers.Layer] = [layers.Rescaling(255.0, name="imagenet_range")]
    if not (np.allclose(scale, 1.0) and np.allclose(offset, 0.0)):
        steps.append(layers.Normalization(mean=(-offset / scale).tolist(), variance=(1.0 / scale ** 2).tolist(),
                                          name="imagenet_scaling"))
    return steps


def read_rgb(model: keras.Model, order: list[int]) -> None:
    """Let a network trained on reordered channels (BGR) read RGB: its first convolution's
    kernel takes input channel k from where the network expected it. Exact, and no layer."""
    if order == [0, 1, 2]:
        return
    first = next(layer for layer in model.layers if layer.weights)
    kernel, *rest = first.get_weights()
    if not isinstance(first, layers.Conv2D) or kernel.shape[2] != 3:
        raise ConfigError(f"{model.name}: reads channels in order {order}, and its first layer with weights "
                          f"({first.name}) is not a convolution over them; not supported as a backbone")
    first.set_weights([kernel[:, :, order, :], *rest])


def assembled(make: Callable[..., keras.Model], shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """The network on `shape` inputs in [0, 1], its scaling in front, pooled, no top; one flat
    functional model (its layers are the photo classifier's own, as for any other start)."""
    scale, offset, order = family_scaling(make)
    inputs = keras.Input(shape, name="image")
    x = inputs
    for layer in input_scaling(scale, offset):
        x = layer(x)
    with warnings.catch_warnings():  # pooled and without its top, a network takes weights learnt at 224 at any side
        warnings.filterwarnings("ignore", message=".*Weights for input shape .* will be loaded as the default")
        model = make(include_top=False, weights=weights, input_tensor=x, input_shape=shape, pooling="avg")
    read_rgb(model, order)
    return model


def takes_input(name: str, make: Callable[..., keras.Model], shape: tuple[int, int, int]) -> None:
    """One line where the network cannot take `shape` inputs (most need 32 pixels a side or more)."""
    try:
        assembled(make, shape, None)
    except ValueError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"finetune.base={PREFIX}{name}: cannot take {shape[0]}x{shape[1]} photos ({reason}); "
                          "set a larger photo.size") from None


def cache_dir() -> Path:
    """Where keras.utils.get_file keeps downloaded weights ($KERAS_HOME, else ~/.keras)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


@contextmanager
def fetch_timeout(seconds: float = FETCH_TIMEOUT_S) -> Iterator[None]:
    """keras.utils.get_file opens its URL with no timeout: on a network that drops packets it
    would wait for ever. A default socket timeout bounds each operation (not the transfer: a
    slow but live download goes on), for the duration of the build only."""
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(saved)


def fetch_problem(error: BaseException) -> str:
    """A short reason for a failed download; Keras' own is `URL fetch failure on URL: CODE -- REASON`."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^URL fetch failure on (\S+): \S+ -- ", r"\1: ", text)


def backbone(name: str, input_shape: tuple[int, ...], weights: str | None = "imagenet") -> keras.Model:
    """keras.applications' `name` without its top, average-pooled, on `input_shape` photos
    (float RGB in [0, 1]; the network's own scaling inside). `weights`: "imagenet" (fetched
    into the Keras cache on first use), None (random: tests) or a weights file. An unknown
    name or too small an input is a ConfigError; weights that cannot be had a NoModelError,
    each one line, raised before anything trains."""
    make, shape = constructor(name), tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ConfigError(f"finetune.base={PREFIX}{name}: takes RGB photos, not {shape} inputs; "
                          "set photo.input=colour or plain")
    try:
        with fetch_timeout():
            return assembled(make, shape, weights)  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - keras.utils.get_file raises a bare Exception when a download fails
        problem = e
    takes_input(name, make, shape)  # where the input is what failed, that is the line
    if weights != "imagenet":  # None or a file: nothing was downloaded
        raise problem
    raise NoModelError(f"finetune.base={PREFIX}{name}: could not download its ImageNet weights "
                       f"({fetch_problem(problem)}); on a machine with internet they are cached in {cache_dir()} on "
                       "first use, or start from scratch with finetune.base=none")
