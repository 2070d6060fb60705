"""One builder for the whole model family, in backend-agnostic Keras 3.

Only `keras.layers` and `keras.optimizers` are used, so the same code runs on the
TensorFlow backend (fastest on CPU here) and on JAX on a GPU (`KERAS_BACKEND=jax`).
"""

from __future__ import annotations

import keras
from keras import layers

from fmnist.config import ModelConfig

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


def build_model(cfg: ModelConfig) -> keras.Model:
    """Conv blocks ((conv, optional batch norm, relu) x convs, pool, dropout), dense layers,
    softmax. `cfg.augment` is not here: fmnist.augment applies it to the training batches."""
    x = inputs = keras.Input(INPUT_SHAPE, name="image")
    for b in cfg.conv_blocks:
        for _ in range(b.convs):
            x = layers.Conv2D(b.filters, b.kernel, padding=b.padding, use_bias=not b.batch_norm)(x)
            if b.batch_norm:
                x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        if b.pool:
            x = layers.MaxPooling2D(2)(x)
        if b.dropout:
            x = layers.Dropout(b.dropout)(x)
    x = layers.Flatten()(x)
    for d in cfg.dense:
        x = layers.Dense(d.units, activation="relu")(x)
        if d.dropout:
            x = layers.Dropout(d.dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="fmnist_cnn")
    model.compile(
        optimizer=keras.optimizers.get({"class_name": cfg.optimizer, "config": {"learning_rate": cfg.learning_rate}}),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
