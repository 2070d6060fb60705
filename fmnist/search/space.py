"""A search space at config paths -> keras-tuner hyperparameters -> a trial's config.

Each entry of conf/search/*.yaml sits at the config path it sets (`model.learning_rate`,
`trainer.batch_size`). At a list's path it sets the list's length (`model.conv_blocks`: blocks
past the base model's copy its last one); `*` gives each item its own value, named by the
item's path (`model.conv_blocks.1.filters`), or with `shared: true` one value for every item.
`when:` keeps an entry to trials where an earlier entry took given values. A trial's config
is the base config with these paths set, validated once; its params carry the same names, and
`command` is the `python -m fmnist.train` (or `finetune`) line that trains those settings.
"""

from __future__ import annotations

import shlex
from contextlib import nullcontext
from typing import Any, Callable

import keras_tuner as kt
from pydantic import ValidationError

from fmnist.config import Config, SearchParam, candidates, input_side
from fmnist.config.paths import EACH, changed, item, list_of, node, resize, set_path
from fmnist.search.oracle import NOT_TRAINED


def declare(hp: kt.HyperParameters, name: str, p: SearchParam) -> Any:
    """Register (or read back) one hyperparameter on `hp` and return its value for this trial."""
    if p.type == "choice":
        return hp.Choice(name, p.values)
    if p.type == "int":
        return hp.Int(name, int(p.min), int(p.max), step=int(p.step or 1))
    if p.type == "float":
        return stepped(hp.Float(name, p.min, p.max, step=p.step), p)
    if p.type == "log_float":
        return hp.Float(name, p.min, p.max, sampling="log")
    if p.type == "boolean":
        return hp.Boolean(name)
    return hp.Fixed(name, p.value)


def stepped(value: float | None, p: SearchParam) -> float | None:
    """A stepped float as the space writes it: keras-tuner makes `min + k * step` in binary
    floating point (0.30000000000000004 for 0.0 + 3 * 0.1); rounded to the digits of `min` and
    `step`, the params, the config and the reproducing command read 0.3."""
    if value is None or not p.step:
        return value
    digits = max(decimals(p.min), decimals(p.step))
    return round(value, digits)


def decimals(x: float) -> int:
    """Digits after the point in the shortest repr of `x` (1e-05 has 5)."""
    text = repr(float(x))
    if "e" in text:
        mantissa, exponent = text.split("e")
        return max(0, len(mantissa.partition(".")[2].rstrip("0")) - int(exponent))
    return len(text.partition(".")[2].rstrip("0"))


def counts(space: dict[str, SearchParam], tree: dict[str, Any], path: str) -> list[int]:
    """The lengths the list at `path` can take in a trial."""
    p = space.get(path)
    if p is None:
        return [len(node(tree, path))]
    return list(range(int(p.min), int(p.max) + 1, int(p.step or 1))) if p.type == "int" else candidates(p)


def each_item(hp: kt.HyperParameters, path: str, p: SearchParam, space: dict[str, SearchParam],
              tree: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A `*` entry's values: one per item that can exist, each item past the first in a
    conditional scope on the list's count, so a trial with fewer items lacks their values."""
    if p.shared:
        return {path: declare(hp, path, p)}
    lst = list_of(path)
    possible, count = counts(space, tree, lst), values.get(lst, len(node(tree, lst)))
    out = {}
    for i in range(max(possible)):
        scoped = i and lst in space
        with hp.conditional_scope(lst, [c for c in possible if c > i]) if scoped else nullcontext():
            value = declare(hp, item(path, i), p)
        if i < count:
            out[item(path, i)] = value
    return out


def trial_values(hp: kt.HyperParameters, space: dict[str, SearchParam], tree: dict[str, Any]) -> dict[str, Any]:
    """Each entry's value in this trial, by path; entries whose `when` does not hold are left out."""
    values: dict[str, Any] = {}
    for path, p in space.items():
        if EACH in path:
            values.update(each_item(hp, path, p, space, tree, values))
            continue
        (parent, allowed), = (p.when or {None: None}).items()
        with hp.conditional_scope(parent, allowed) if parent else nullcontext():
            value = declare(hp, path, p)
        if value is not None:  # keras-tuner answers None in a scope whose condition does not hold
            values[path] = value
    return values


def apply(tree: dict[str, Any], values: dict[str, Any]) -> None:
    """Set the values in the config tree: list lengths first, then items and leaves."""
    for path, value in values.items():
        if isinstance(node(tree, path), list):
            resize(tree, path, value)
    for path, value in values.items():
        if EACH in path:
            for i in range(len(node(tree, list_of(path)))):
                set_path(tree, item(path, i), value)
        elif not isinstance(node(tree, path), list):
            set_path(tree, path, value)


def trial_config(hp: kt.HyperParameters, cfg: Config,
                 implied: Callable[[dict[str, Any]], None] = lambda tree: None) -> Config:
    """The base config with this trial's values at their paths, and what they imply elsewhere
    (`implied`, a kind's: a photo trial that starts from Fashion-MNIST weights takes their
    input), validated once."""
    tree = cfg.model_dump()
    apply(tree, trial_values(hp, cfg.search, tree))
    implied(tree)
    try:
        return Config.model_validate(tree, context=input_side(tree))
    except ValidationError as e:  # e.g. valid 5x5 convs in 3 blocks shrink 28x28 away
        msg = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise kt.errors.FailedTrialError(f"{NOT_TRAINED}invalid config: {msg}") from None


def params(values: dict[str, Any], trial: Config) -> dict[str, Any]:
    """A trial's hyperparameters as MLflow params: a shared `*` value under each item's path."""
    tree, out = trial.model_dump(), {}
    for path, value in values.items():
        if EACH in path:  # floats as the config holds them (`stepped`), not keras-tuner's binary sums
            out.update({item(path, i): node(tree, item(path, i)) if isinstance(value, float) else value
                        for i in range(len(node(tree, list_of(path))))})
        elif not path.startswith("tuner/"):  # Hyperband's bookkeeping
            out[path] = node(tree, path) if isinstance(value, float) else value
    return out


# What each command trains: the sections that decide a model (not where it is logged).
TRAINS = {"train": ("name", "seed", "data", "model", "trainer"),
          "finetune": ("name", "seed", "model", "trainer", "photos", "validation", "photo", "limits", "finetune")}


def command(trial: Config, base: Config, program: str = "train") -> str:
    """The command line, `python -m fmnist.<program>`, that trains `trial`'s settings again, as
    the plain config plus the overrides that differ: the same model.yaml (weights differ by
    the trial's seed)."""
    keep = set(TRAINS[program])
    overrides = changed(trial.model_dump(include=keep), base.model_dump(include=keep))
    return " ".join(["python", "-m", f"fmnist.{program}", *map(shlex.quote, overrides)])
