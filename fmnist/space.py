"""The search space: YAML entries -> keras-tuner hyperparameters -> a trial's model config.

Each entry of conf/search/*.yaml names one of `SEARCHABLE`; whatever the space leaves
out keeps the base config's value, so a space can be as narrow as one dimension.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import keras_tuner as kt

from fmnist.config import PER_BLOCK, Augment, Config, ConvBlock, ModelConfig, SearchParam


def augment_on(base: Augment) -> Augment:
    """What `augment: true` in a space means: the base model's augmentation plus mirror
    images and 1-pixel shifts (3-pixel shifts slowed learning so much that 5 epochs reached
    85% where 1 pixel reached 90%). Base settings such as `perspective` (experiment=photos)
    thus reach every trial."""
    return base.model_copy(update={"flip": True, "shift": 0.05})


def declare(hp: kt.HyperParameters, name: str, p: SearchParam) -> Any:
    """Register (or read back) one hyperparameter on `hp` and return its value for this trial."""
    if p.type == "choice":
        return hp.Choice(name, p.values)
    if p.type == "int":
        return hp.Int(name, int(p.min), int(p.max), step=int(p.step or 1))
    if p.type == "float":
        return hp.Float(name, p.min, p.max, step=p.step)
    if p.type == "log_float":
        return hp.Float(name, p.min, p.max, sampling="log")
    if p.type == "boolean":
        return hp.Boolean(name)
    return hp.Fixed(name, p.value)


class TrialValues:
    """Reads a trial's value for a name, falling back to the base config's value."""

    def __init__(self, hp: kt.HyperParameters, space: dict[str, SearchParam]) -> None:
        self.hp, self.space = hp, space

    def get(self, name: str, default: Any, block: int | None = None) -> Any:
        if name not in self.space:
            return default
        key = f"{name}_{block + 1}" if block is not None and name in PER_BLOCK else name
        return declare(self.hp, key, self.space[name])

    def max_blocks(self, base: ModelConfig) -> int:
        p = self.space.get("conv_blocks")
        if p is None:
            return len(base.conv_blocks)
        return max(p.values) if p.type == "choice" else int(p.value if p.type == "fixed" else p.max)

    def block_scope(self, i: int):
        """Blocks beyond the first exist only when `conv_blocks` is large enough: a
        conditional scope keeps their hyperparameters out of trials that lack them."""
        p = self.space.get("conv_blocks")
        if i == 0 or p is None or p.type == "fixed":
            return nullcontext()
        counts = p.values if p.type == "choice" else range(int(p.min), int(p.max) + 1, int(p.step or 1))
        return self.hp.conditional_scope("conv_blocks", [c for c in counts if c > i])


def conv_blocks(v: TrialValues, base: ModelConfig) -> list[ConvBlock]:
    """Every possible block is visited, so keras-tuner sees each block's hyperparameters
    (inside its conditional scope) even in trials that use fewer blocks."""
    count = v.get("conv_blocks", len(base.conv_blocks))
    templates = base.conv_blocks or [ConvBlock()]
    shared = {k: v.get(k, getattr(templates[0], k)) for k in ("convs", "kernel", "padding", "batch_norm")}
    blocks = []
    for i in range(v.max_blocks(base)):
        template = templates[min(i, len(templates) - 1)]
        with v.block_scope(i):
            update = {"filters": v.get("filters", template.filters, i),
                      "dropout": v.get("block_dropout", template.dropout, i)}
        if i < count:
            blocks.append(template.model_copy(update={**shared, **update}))
    return blocks


def model_config(hp: kt.HyperParameters, cfg: Config) -> ModelConfig:
    """The trial's model: base model config with the space's values put in, re-validated."""
    v, base = TrialValues(hp, cfg.search), cfg.model
    dense = base.dense[0] if base.dense else None
    update = {
        "conv_blocks": conv_blocks(v, base),
        "dense": [{"units": v.get("dense_units", dense.units if dense else 128),
                   "dropout": v.get("dense_dropout", dense.dropout if dense else 0.0)}] + base.dense[1:],
        "augment": augment_on(base.augment) if v.get("augment", False) else base.augment,
        "optimizer": v.get("optimizer", base.optimizer),
        "learning_rate": v.get("learning_rate", base.learning_rate),
    }
    return ModelConfig.model_validate({**base.model_dump(), **{k: _plain(x) for k, x in update.items()}})


def _plain(x: Any) -> Any:
    if isinstance(x, list):
        return [_plain(i) for i in x]
    return x.model_dump() if hasattr(x, "model_dump") else x


def fit_settings(hp: kt.HyperParameters, cfg: Config) -> tuple[int, int]:
    """(epochs, batch_size): real tuned values when the space has them."""
    v = TrialValues(hp, cfg.search)
    return v.get("epochs", cfg.trainer.epochs), v.get("batch_size", cfg.trainer.batch_size)

