"""The first trials of a sweep: settings already known to be good, so that a sweep never
does worse, by the luck of its draws, than the registry's `best` or the original project.

A known config is written into the space's terms: each entry's value at its path (a list's
length, each item's value, one shared value). The model must fit as it is: a value the
space cannot give (another optimizer, 128 filters in a space of 32 or 64) means the config
does not fit, and it is not tried first. How a trial trains (`trainer.*`: epochs, batch
size) is the space's budget: the nearest value it gives is taken (the original's 100 epochs
become a trial's longest), and the note says so.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import keras_tuner as kt
import mlflow
import yaml
from mlflow.exceptions import MlflowException

from fmnist.config import Config, SearchParam
from fmnist.config.paths import EACH, item, list_of, node


def nearest(p: SearchParam, value: Any, snap: bool) -> Any:
    """`value` if the entry can give it, else with `snap` the nearest it can give; None when
    it cannot give it (or, with `snap`, anything like it)."""
    if p.type == "fixed":
        return p.value  # a fixed entry is part of every trial, the known ones too
    if p.type == "boolean":
        return value if isinstance(value, bool) else None
    if p.type == "choice":
        if value in p.values:
            return value
        numbers = [v for v in p.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return min(numbers, key=lambda v: abs(v - value)) if snap and numeric and numbers else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    on_grid = p.min + round((value - p.min) / p.step) * p.step if p.step and p.type in ("int", "float") else value
    inside = value if same(on_grid, value) and p.min <= value <= p.max else min(max(on_grid, p.min), p.max)
    if not snap and not same(inside, value):
        return None
    return int(inside) if p.type == "int" else inside


class Misfit(Exception):
    """A known config without a path the space reads, or with another shape there."""


def value_at(tree: Any, path: str) -> Any:
    try:
        return node(tree, path)
    except (KeyError, IndexError, TypeError):
        raise Misfit(f"its config has no {path}") from None


def count_at(tree: Any, path: str) -> int:
    """The length of the list at `path` (an item path's list)."""
    items = value_at(tree, path)
    if not isinstance(items, list):
        raise Misfit(f"its {path} is {items!r}, not a list")
    return len(items)


def known_values(space: dict[str, SearchParam], tree: Any) -> tuple[dict[str, Any], list[str]]:
    """The tuner's values that give `tree` in `space`, and notes on what had to move
    ("trainer.epochs 100->6"); ({}, [why]) when an entry can give no value like the known one,
    or the tree lacks a path the space reads (a config of another shape, another version's)."""
    try:
        return fitted_values(space, tree)
    except Misfit as e:
        return {}, [str(e)]


def fitted_values(space: dict[str, SearchParam], tree: Any) -> tuple[dict[str, Any], list[str]]:
    values, notes = {}, []
    for path, p in space.items():
        if p.when:
            return {}, [f"{path}: conditional entries are not seeded"]
        if EACH in path and not p.shared:
            wanted = {item(path, i): value_at(tree, item(path, i)) for i in range(count_at(tree, list_of(path)))}
        elif EACH in path:
            shared = {repr(value_at(tree, item(path, i))) for i in range(count_at(tree, list_of(path)))}
            if len(shared) > 1:
                return {}, [f"{path}: the blocks differ, and the space gives them one value"]
            wanted = {path: value_at(tree, item(path, 0))}
        else:
            target = value_at(tree, path)
            wanted = {path: len(target) if isinstance(target, list) else target}
        for name, value in wanted.items():
            got = nearest(p, value, snap=path.startswith("trainer."))
            if got is None:
                return {}, [f"{name}={value!r} is not in the space"]
            if p.type != "fixed" and not same(got, value):
                notes.append(f"{name} {value}->{got}")
            values[name] = got
    return values, notes


def same(a: Any, b: Any) -> bool:
    return math.isclose(a, b) if isinstance(a, float) or isinstance(b, float) else a == b


def first_trials(space: dict[str, SearchParam], known: dict[str, Any]) -> list[dict[str, Any]]:
    """The known configs (name -> config tree, None: there is none) that fit, in order, each
    said on one line; the same settings twice are tried once."""
    first = []
    for name, tree in known.items():
        if tree is None:
            continue
        values, notes = known_values(space, tree)
        if not values:
            misfit(name, notes[0])
        elif values not in first:
            first.append(values)
            print(f"first trial {len(first) - 1}: {name}" + (f" ({', '.join(notes)})" if notes else ""), flush=True)
    return first


def misfit(name: str, why: str) -> None:
    print(f"note: {name} does not fit the search space ({why}); not tried first", file=sys.stderr)


def registered_config(cfg: Config) -> Any:
    """The config that trained the version the alias points to; None when there is none (or
    it predates configs logged with the model). One that cannot be read is a note, not the
    end of the sweep: the registry may hold anything."""
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(cfg.mlflow.registered_model, cfg.selection.alias)
        text = mlflow.artifacts.load_text(f"runs:/{version.tags['source_run']}/config.yaml")
    except (MlflowException, KeyError, OSError):
        return None
    try:
        return yaml.safe_load(text) or {}  # an empty file: a config without the paths the space reads
    except yaml.YAMLError as e:
        reason = str(e).splitlines()[0]
        misfit(f"{cfg.mlflow.registered_model}@{cfg.selection.alias}", f"its config.yaml is not readable YAML: {reason}")
        return None


class Seeded:
    """Mixin for a keras-tuner oracle: trials 0..n-1 of a new sweep take `first`'s values, then
    the oracle's own choices. A resumed sweep has its trials already, so none is repeated."""

    def __init__(self, *args: Any, first: Sequence[dict[str, Any]] = (), **kwargs: Any) -> None:
        """`first`: the values of trials 0, 1, ... (`first_trials`); the rest is the oracle's."""
        self.first = [dict(values) for values in first]
        super().__init__(*args, **kwargs)

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        index = int(trial_id)
        if index < len(self.first):
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": dict(self.first[index])}
        return super().populate_space(trial_id)
