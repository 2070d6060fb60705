"""Config paths as a search space uses them: `model.learning_rate`, `model.dense.0.units`,
`model.conv_blocks` (a list: its length) and `model.conv_blocks.*.filters` (every item).
Plain functions on the config as a dict, so checking a space imports no training stack."""

from __future__ import annotations

import copy
import re
from typing import Any

EACH = "*"


def parts(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def node(tree: Any, path: str) -> Any:
    """The value at `path`; `*` reads the first item. KeyError/IndexError if there is none."""
    for part in parts(path):
        tree = tree[0 if part == EACH else part]
    return tree


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = parts(path)
    for part in parents:
        tree = tree[part]
    tree[leaf] = value


def list_of(path: str) -> str:
    """`model.conv_blocks.*.filters` -> `model.conv_blocks`: the list an item path runs through."""
    return path.split(f".{EACH}.")[0]


def item(path: str, i: int) -> str:
    """`model.conv_blocks.*.filters`, 1 -> `model.conv_blocks.1.filters`."""
    return path.replace(EACH, str(i))


def resize(tree: dict[str, Any], path: str, count: int) -> None:
    """The list at `path` cut or grown to `count` items; new items copy the last one."""
    items = node(tree, path)
    set_path(tree, path, [copy.deepcopy(items[min(i, len(items) - 1)]) for i in range(count)])


def override(value: Any) -> str:
    """A value as Hydra's command-line grammar reads it: `[{filters:32,pool:true}]`, `null`."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(override(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, str) and not re.fullmatch(r"[\w./-]+", value):
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


def changed(trial: dict[str, Any], base: dict[str, Any], prefix: str = "") -> list[str]:
    """`key=value` overrides that turn `base` into `trial`; a list that differs goes whole."""
    out = []
    for key, value in trial.items():
        if value == base.get(key):
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out += changed(value, base[key], f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={override(value)}")
    return out
