"""A composed config checked against a schema, every problem on one line that starts with
the key as the user types it (`model.conv_blocks[0].filters=0: ...`), so a typo costs a
second, not a training run. Works for any schema: what a line says is found by walking it."""

from __future__ import annotations

import re
from typing import Any, TypeVar, get_args

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from fmnist.config.model import input_side
from fmnist.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def validate(schema: type[M], cfg: DictConfig | dict, prefix: str = "") -> M:
    """Check `cfg` against `schema`; raise ConfigError listing every problem, one per line.
    An interpolation that cannot be resolved (`${oc.env:UNSET}`) is one of them."""
    try:
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    except OmegaConfBaseException as e:
        raise ConfigError(unresolved(e)) from None
    raw = {k: v for k, v in raw.items() if k != "hydra"}
    try:
        return schema.model_validate(raw, context=input_side(raw))
    except ValidationError as e:
        raise ConfigError("\n".join(one_line(schema, err, prefix) for err in e.errors())) from None


def unresolved(e: OmegaConfBaseException) -> str:
    """`sweep.name='${oc.env:UNSET}': cannot resolve: Environment variable 'UNSET' not found`:
    the key, the value as written, and OmegaConf's reason without its own key lines."""
    reason = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(e.msg).splitlines()[0]).strip('"')
    written = f"={e.child_node._value()!r}" if getattr(e, "child_node", None) is not None else ""
    return f"{e.full_key}{written}: cannot resolve: {reason}"


def one_line(schema: type[BaseModel], err: dict[str, Any], prefix: str) -> str:
    """One of pydantic's errors as `key=value: reason`; for an unknown key, the keys allowed there."""
    loc = tuple(p for p in err["loc"] if p != "function-after")
    owner, keys = walk(schema, loc[:-1])
    key = prefix + dotted(walk(schema, loc)[1])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed keys: {', '.join(owner.model_fields)}"
    if not loc:
        return msg
    if isinstance(err.get("input"), dict):
        return f"{key}: {msg}"
    return f"{key}={err.get('input')!r}: {msg}"


def walk(schema: type[BaseModel], loc: tuple) -> tuple[type[BaseModel], tuple]:
    """Follow `loc` down the schema's field annotations: the model it ends in, and `loc` as the
    user writes it. Pydantic puts a tagged union's tag in `loc` (`tuner.random.max_trials`):
    the tag picks the member and is dropped (`tuner.max_trials`)."""
    kept: list[Any] = []
    members: dict[Any, type[BaseModel]] = {}  # tag -> member, right after a tagged union's field
    for part in loc:
        if part in members:
            schema, members = members[part], {}
            continue
        kept.append(part)
        members = {}
        if isinstance(part, int) or part not in schema.model_fields:
            continue  # a list index or a dict key: the item's schema was taken at its field
        field = schema.model_fields[part]
        args = getattr(field.annotation, "__args__", (field.annotation,))  # list[X], dict[str, X], Optional[X], Union
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if field.discriminator:
            members = {tag: m for m in models for tag in get_args(m.model_fields[field.discriminator].annotation)}
        schema = models[0] if models else schema
    return schema, tuple(kept)


def dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
