"""Several trained models as one: the mean of their probabilities.

Models trained from different starts err on different photos, so the mean of their
probabilities errs less than any one of them. Built as one functional Keras model (an input
"image", an output "probabilities"), the ensemble is saved as one `.keras` file, loads with
`safe_mode` (no Lambda layer) and is logged and served as any single model is. A leaf module
(keras only).
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers


def averaged(models: Sequence[keras.Model]) -> keras.Model:
    """One model answering the mean of `models`' probabilities (one member: that member).

    Each member goes in as a sub-model of its own name (`member_0`, ...): members loaded from
    files all carry the name they were saved with, and two layers of one name cannot sit in
    one model. The sub-model shares the member's layers and weights; the member is unchanged.
    For inference: not compiled."""
    members = list(models)
    shape, classes = shape_of(members)
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape, name="image")
    outputs = [keras.Model(m.input, m.output, name=f"member_{k}")(inputs) for k, m in enumerate(members)]
    return keras.Model(inputs, layers.Average(name="probabilities")(outputs), name=f"ensemble_of_{len(members)}")


def shape_of(members: list[keras.Model]) -> tuple[tuple[int, ...], int]:
    """The input shape and class count every member shares, or a ValueError in one line: an
    average over members of other inputs or other classes means nothing."""
    if not members:
        raise ValueError("an ensemble needs at least one model")
    found = []
    for k, m in enumerate(members):
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise ValueError(f"member {k} ({m.name}) has {len(m.inputs)} inputs and {len(m.outputs)} outputs; "
                             "an ensemble member takes one image and gives one probability row")
        found.append((tuple(m.input_shape[1:]), int(m.output_shape[-1])))
    if len(set(found)) > 1:
        raise ValueError("ensemble members must share input shape and class count; got "
                         + ", ".join(f"{shape} -> {classes} classes" for shape, classes in found))
    return found[0]
