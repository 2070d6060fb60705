"""Arrays into Keras' `fit` and out of a model, one way for every caller, on either backend.

On JAX the arrays are copied to the accelerator once, so each batch is sliced there rather
than sent from the host; Keras batches and shuffles them.

On TensorFlow the batches come from a tf.data pipeline of our own (indices shuffled, batched,
then gathered in a sequential map, prefetched), not from Keras' NumPy adapter. The adapter
gathers each batch in a *parallel* map, and TensorFlow's op determinism (which
`fitting.seed_everything` turns on, so that a seed repeats a run) rewrites that into a
sequential map, copying an attribute of the parallel op (`use_unbounded_threadpool`) that the
sequential op does not define: TensorFlow 2.20-2.21 then logs `E0000 ... NodeDef mentions
attribute use_unbounded_threadpool which is not in the op definition` for every process that
fits or predicts, an error line about nothing. A sequential map needs no rewrite, and the same
seed gives the same order.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

INFERENCE_BATCH = 1024  # validation and prediction: no gradients, so large batches are cheap


def fit_inputs(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, parts: int = 1) -> dict[str, Any]:
    """`fit`'s keyword arguments for training on `x`, `y`: reshuffled every epoch from `seed`.
    `parts` > 1: each Keras epoch is that fraction of an epoch (a pruned sweep's rungs end
    between passes); on TensorFlow the parts of a pass are disjoint, the dataset running on
    across Keras epochs; on JAX each part is a fresh random draw of that many batches."""
    steps = {"steps_per_epoch": math.ceil(len(x) / batch_size / parts)} if parts > 1 else {}
    if keras.backend.backend() == "jax":
        return {"x": on_device(x), "y": on_device(y), "batch_size": batch_size, **steps}
    # the dataset shuffles itself
    return {"x": dataset((x, y), batch_size, seed, repeat=parts > 1), "shuffle": False, **steps}


def validation_data(x: np.ndarray, y: np.ndarray) -> Any:
    """`fit`'s `validation_data`, in order."""
    if keras.backend.backend() == "jax":
        return on_device(x), on_device(y)
    return dataset((x, y), INFERENCE_BATCH)


def outputs(model: keras.Model, x: np.ndarray, batch_size: int = INFERENCE_BATCH) -> Any:
    """`model`'s outputs for `x` in inference mode, as NumPy (a list for a model of several
    outputs), by direct calls on slices rather than `predict`: no input pipeline at all, and
    no per-model tf.function, whose traces for each trial's model TensorFlow reports as
    "retracing" warnings."""
    parts = [model(x[i: i + batch_size], training=False) for i in range(0, len(x), batch_size)]
    if isinstance(parts[0], (list, tuple)):
        return [np.concatenate([keras.ops.convert_to_numpy(p[k]) for p in parts]) for k in range(len(parts[0]))]
    return np.concatenate([keras.ops.convert_to_numpy(p) for p in parts])


def on_device(a: np.ndarray) -> Any:
    """The array on the JAX device, 64-bit integers as 32-bit (JAX's default width)."""
    return keras.ops.convert_to_tensor(a.astype(np.int32) if a.dtype == np.int64 else a)


def dataset(arrays: tuple[np.ndarray, ...], batch_size: int, seed: int | None = None, repeat: bool = False) -> Any:
    """Batches of `arrays` (one element: a batch of it alone), shuffled when a `seed` is given;
    `repeat`: pass after pass without end (Keras counts `steps_per_epoch` batches an epoch)."""
    import tensorflow as tf

    with tf.device("/cpu:0"):  # tf.data runs on the host: arrays on a GPU would come back for every batch
        tensors = tuple(tf.constant(a) for a in arrays)
    order = tf.data.Dataset.range(len(arrays[0]))
    if seed is not None:
        order = order.shuffle(len(arrays[0]), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        order = order.repeat()
    def gather(i):  # noqa: ANN001, ANN202 - a batch of indices -> the batch (of x alone: not a 1-tuple)
        batch = tuple(tf.gather(t, i) for t in tensors)
        return batch if len(batch) > 1 else batch[0]

    return order.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)
