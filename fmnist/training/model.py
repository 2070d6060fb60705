"""One builder for the whole model family, in backend-agnostic Keras 3.

Only `keras.layers` and `keras.optimizers` are used, so the same code runs on the
TensorFlow backend (fastest on CPU here) and on JAX on a GPU (`KERAS_BACKEND=jax`).
"""

from __future__ import annotations

import keras
from keras import layers

from fmnist.config import ConvBlock, ModelConfig
from fmnist.training.calibration import Temperature

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


def build_model(cfg: ModelConfig, input_shape: tuple[int, int, int] = INPUT_SHAPE,
                classes: int = NUM_CLASSES) -> keras.Model:
    """Conv blocks ((conv, optional batch norm, relu) x convs, pool, dropout), dense layers,
    softmax. `cfg.augment` is not here: fmnist.training.augment applies it to the training batches.
    Photo models (fmnist.transfer) pass their own input shape and number of classes."""
    x = inputs = keras.Input(input_shape, name="image")
    for b in cfg.conv_blocks:
        x = residual_convs(x, b) if b.residual else plain_convs(x, b)
        if b.pool:
            x = layers.MaxPooling2D(2)(x)
        if b.dropout:
            x = layers.Dropout(b.dropout)(x)
    x = layers.GlobalAveragePooling2D()(x) if cfg.pooling == "average" else layers.Flatten()(x)
    for d in cfg.dense:
        x = layers.Dense(d.units, activation="relu")(x)
        if d.dropout:
            x = layers.Dropout(d.dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="fmnist_cnn")
    model.compile(
        optimizer=keras.optimizers.get({"class_name": cfg.optimizer, "config": {"learning_rate": cfg.learning_rate}}),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def plain_convs(x, b: ConvBlock):  # noqa: ANN001, ANN201 - Keras tensors
    """(conv, optional batch norm, relu) x b.convs."""
    for k in range(b.convs):
        x = layers.Conv2D(b.filters, b.kernel, strides=b.stride if k == 0 else 1, padding=b.padding,
                          use_bias=not b.batch_norm)(x)
        if b.batch_norm:
            x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return x


def residual_convs(x, b: ConvBlock):  # noqa: ANN001, ANN201 - Keras tensors
    """The same convs with the block's input added before the last relu (a 1x1 conv, and
    batch norm, brings the input to the output's shape where the block changes it)."""
    shortcut = x
    for k in range(b.convs):
        x = layers.Conv2D(b.filters, b.kernel, strides=b.stride if k == 0 else 1, padding=b.padding,
                          use_bias=not b.batch_norm)(x)
        if b.batch_norm:
            x = layers.BatchNormalization()(x)
        if k < b.convs - 1:
            x = layers.Activation("relu")(x)
    if tuple(shortcut.shape[1:]) != tuple(x.shape[1:]):
        shortcut = layers.Conv2D(b.filters, 1, strides=b.stride, padding=b.padding, use_bias=not b.batch_norm)(shortcut)
        if b.batch_norm:
            shortcut = layers.BatchNormalization()(shortcut)
    return layers.Activation("relu")(layers.Add()([x, shortcut]))


@keras.saving.register_keras_serializable(package="fmnist")
class Mirror(layers.Layer):
    """The left-right mirror image: `RandomFlip` without the randomness."""

    def call(self, x):  # noqa: ANN001, ANN201
        return keras.ops.flip(x, axis=2)


# For loaders of saved models; the registration above covers any process that imported this module.
CUSTOM_OBJECTS = {"Mirror": Mirror, "Temperature": Temperature}


def mirror_averaged(model: keras.Model) -> keras.Model:
    """`model` predicting the mean of its probabilities for the image and for its mirror
    image. A model trained on flipped garments sees both as the same class, and the mean
    of two views errs less: +0.2 points of test accuracy on the default sweep's winner."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    outputs = layers.Average(name="probabilities")([model(inputs), model(Mirror()(inputs))])
    return keras.Model(inputs, outputs, name=f"{model.name}_mirror_averaged")  # for inference: not compiled


def base_model(model: keras.Model) -> keras.Model:
    """The trained network inside a `mirror_averaged` and/or `calibrated` model (or the model
    itself): wrappers nest, so it looks inside each until a model holds no other."""
    inner = next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)
    return model if inner is None else base_model(inner)
