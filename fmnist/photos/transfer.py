"""Fine-tuning on a user's photos: the network, its augmentation and its two-stage training.

The network is a Fashion-MNIST model's (its classifier replaced by one for the user's
classes), a keras.applications network with ImageNet weights (`imagenet:NAME`,
fmnist/photos/imagenet.py) under such a classifier, or one built from `model:` at the photo
input's size, from scratch. Training optionally warms the new classifier up alone, then lets
`finetune.trainable` join.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fmnist.batches import fit_inputs, validation_data
from fmnist.config import Config, PhotoAugment
from fmnist.training.fitting import cosine_schedule
from fmnist.training.model import base_model, build_model, mirror_averaged


class RandomTone(layers.Layer):
    """Random gain (brightness) and gamma (contrast) per image, in training only. Both
    keep 0 at 0, so a segmented photo's black background stays black, as at prediction."""

    def __init__(self, brightness: float, contrast: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.brightness, self.contrast = brightness, contrast
        self.seeds = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):  # noqa: ANN001, ANN201
        if not training:
            return x
        shape = (keras.ops.shape(x)[0], 1, 1, 1)
        gain = keras.random.uniform(shape, 1 - self.brightness, 1 + self.brightness, seed=self.seeds)
        gamma = keras.random.uniform(shape, 1 - self.contrast, 1 + self.contrast, seed=self.seeds)
        return keras.ops.clip(keras.ops.power(keras.ops.clip(x, 1e-6, 1.0), gamma) * gain, 0.0, 1.0)


def augmenter(a: PhotoAugment, seed: int) -> list[layers.Layer]:
    """The training-time layers `a` asks for, in the order a camera would cause them. Each
    has a seed of its own: with one seed they would draw the same numbers (every flipped
    image also shifted the same way)."""
    steps = [
        a.flip and (lambda s: layers.RandomFlip("horizontal", seed=s)),
        a.rotate and (lambda s: layers.RandomRotation(a.rotate, fill_mode="constant", seed=s)),
        a.perspective and (lambda s: layers.RandomPerspective(factor=0.5, scale=a.perspective, seed=s)),
        a.zoom and (lambda s: layers.RandomZoom(a.zoom, fill_mode="constant", seed=s)),
        a.shift and (lambda s: layers.RandomTranslation(a.shift, a.shift, fill_mode="constant", seed=s)),
        (a.brightness or a.contrast) and (lambda s: RandomTone(a.brightness, a.contrast, s)),
    ]
    return [make(seed + i) for i, make in enumerate(steps) if make]


def new_classifier(base: keras.Model, classes: int, dropout: float) -> keras.Model:
    """`base`'s layers up to its last hidden one, then a new softmax over `classes`."""
    return classifier_on(base.inputs, base.layers[-1].input, classes, dropout)


def classifier_on(inputs: list, features, classes: int, dropout: float) -> keras.Model:  # noqa: ANN001
    """`finetune.dropout` and a softmax over `classes` on `features`: the head every start gets."""
    x = layers.Dropout(dropout)(features) if dropout else features
    outputs = layers.Dense(classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="photo_classifier")


def network(cfg: Config, classes: int, base: keras.Model | None) -> keras.Model:
    """A copy of `base` (each trial of a sweep starts from its weights, not from the last
    trial's) or, with none, `cfg.model` built at the photo size; then `finetune.dropout` and a
    new classifier: on a Fashion-MNIST model's last hidden layer, after an ImageNet backbone's
    pooled features (it has no top)."""
    if base is None:
        return new_classifier(build_model(cfg.model, cfg.photo.shape, classes), classes, cfg.finetune.dropout)
    start = copied(base if cfg.finetune.imagenet else base_model(base))
    if cfg.finetune.imagenet:
        return classifier_on(start.inputs, start.outputs[0], classes, cfg.finetune.dropout)
    return new_classifier(start, classes, cfg.finetune.dropout)


def copied(model: keras.Model) -> keras.Model:
    """A new model with `model`'s layers and weights, sharing no variable with it."""
    start = keras.models.clone_model(model)
    start.set_weights(model.get_weights())
    return start


def set_trainable(net: keras.Model, which: str, keep_norms: bool = False) -> None:
    """all | dense (dense layers and the classifier) | classifier. Frozen batch norm layers
    also stop updating their statistics (Keras runs them in inference mode). `keep_norms` (an
    ImageNet start) keeps them frozen throughout: their statistics are ImageNet's, and a few
    hundred photos in batches of 32 would replace them with noisier ones (Keras' own advice
    for fine-tuning keras.applications networks)."""
    last = net.layers[-1]
    for layer in net.layers:
        kept = keep_norms and isinstance(layer, layers.BatchNormalization)
        layer.trainable = not kept and (which == "all" or layer is last
                                        or (which == "dense" and isinstance(layer, layers.Dense)))


def stages(cfg: Config) -> list[tuple[int, str]]:
    """(last epoch, what trains) per stage: the warm-up of the new classifier, then the rest."""
    ft, epochs = cfg.finetune, cfg.trainer.epochs
    if ft.from_scratch:
        return [(epochs, "all")]
    warm = min(ft.warmup_epochs, epochs)
    return [s for s in [(warm, "classifier"), (epochs, ft.trainable)] if s[0] > 0]


def compiled(net: keras.Model, cfg: Config, seed: int) -> keras.Model:
    """The model `fit` trains: the augmentation layers in front of `net` (sharing its weights)."""
    model = keras.Sequential([keras.Input(net.input_shape[1:]), *augmenter(cfg.finetune.augment, seed), net])
    model.compile(
        optimizer=keras.optimizers.get({"class_name": cfg.model.optimizer,
                                        "config": {"learning_rate": cfg.model.learning_rate}}),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.finetune.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def train_stages(net: keras.Model, cfg: Config, train: tuple[np.ndarray, np.ndarray],
                 val: tuple[np.ndarray, np.ndarray], callbacks: list, seed: int) -> dict[str, list[float]]:
    """Fit `net` stage by stage; returns the per-epoch history of all stages together."""
    classes = net.output_shape[-1]
    onehot = lambda y: keras.utils.to_categorical(y, classes)  # noqa: E731 - label smoothing needs one-hot
    history: dict[str, list[float]] = {}
    if cfg.trainer.lr_schedule == "cosine":
        callbacks = [*callbacks, cosine_schedule(cfg.model.learning_rate, cfg.trainer.epochs)]
    start = 0
    for stage, (end, which) in enumerate(stages(cfg)):
        set_trainable(net, which, keep_norms=bool(cfg.finetune.imagenet))
        model = compiled(net, cfg, seed + 100 * stage)  # a stage does not replay the last one's draws
        h = model.fit(**fit_inputs(train[0], onehot(train[1]), cfg.trainer.batch_size, seed + stage), epochs=end,
                      initial_epoch=start, validation_data=validation_data(val[0], onehot(val[1])), callbacks=callbacks,
                      verbose=cfg.trainer.verbose)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(v)
        if model.stop_training:  # a callback ended it (NaN, too slow): no next stage
            break
        start = end
    return history


def for_inference(net: keras.Model, cfg: Config) -> keras.Model:
    """What gets logged: with flips in training, the mean over the photo and its mirror image."""
    return mirror_averaged(net) if cfg.finetune.augment.flip else net
