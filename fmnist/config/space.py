"""The entries of a search space: their kinds, the values each kind can give, and the checks
that a space fits the config it searches.

A leaf, as Optuna's distributions.py is: it knows config paths (fmnist.config.paths) and
pydantic, not the sweep's schema, so the schema that holds a `search:` mapping checks it
against itself here, and the search engine reads an entry's values without the schema.

An entry's `type` says which of its fields mean something:

    type       fields           values it can give
    choice     values           any one of `values`
    int        min, max, step   whole numbers from min to max, every step (1 when unset)
    float      min, max, step   numbers from min to max, on the step's grid when set
    log_float  min, max         numbers from min to max, drawn on a log scale
    boolean    -                False or True
    fixed      value            `value`, in every trial
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, get_args

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator

from fmnist.config.paths import EACH, list_of, node, parts
from fmnist.config.strict import Strict


class SearchParam(Strict):
    """One entry of a search space (conf/search/), at the config path it sets. Its unset
    fields mean "not this kind of entry", not a default."""

    type: Literal["choice", "int", "float", "log_float", "boolean", "fixed"]
    values: Optional[list[Any]] = None
    value: Any = None
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    when: Optional[dict[str, list[Any]]] = Field(None, description="searched only in trials where this other "
                                                 "entry took one of these values")
    shared: bool = Field(False, description="a `*` path: one value for every item, not one per item")

    @model_validator(mode="after")
    def _complete(self) -> "SearchParam":
        if self.type == "choice" and not self.values:
            raise ValueError("type 'choice' needs a non-empty 'values' list")
        if self.type == "fixed" and self.value is None:
            raise ValueError("type 'fixed' needs a 'value'")
        if self.type in ("int", "float", "log_float"):
            if self.min is None or self.max is None:
                raise ValueError(f"type '{self.type}' needs 'min' and 'max'")
            if self.min > self.max:
                raise ValueError(f"min {self.min:g} is above max {self.max:g}")
            if self.type == "log_float" and self.min <= 0:
                raise ValueError("type 'log_float' needs min > 0")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step {self.step:g} must be above 0")
        if self.type == "int" and any(v is not None and v != int(v) for v in (self.min, self.max, self.step)):
            raise ValueError("type 'int' takes whole numbers for min, max and step")
        return self


def candidates(p: SearchParam) -> list[Any]:
    """The values an entry can give, or its ends: what must all pass the target's range."""
    if p.type == "choice":
        return list(p.values)
    if p.type == "fixed":
        return [p.value]
    if p.type == "boolean":
        return [False, True]
    return [int(p.min), int(p.max)] if p.type == "int" else [p.min, p.max]


def flattened(space: Any) -> Any:
    """A space that nests like the config (`photo: {size: {type: choice, ...}}`, so that
    `search.photo.size.values=[48,64]` overrides it) as entries at config paths (`photo.size`).
    An entry is a mapping with a `type`; anything else is left for validation to reject."""
    if not isinstance(space, dict):
        return space
    flat: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, dict) and "type" not in value and value:
            flat.update({f"{key}.{k}": v for k, v in flattened(value).items()})
        else:
            flat[key] = value
    return flat


# A space as a schema field: its entries at config paths, read from a nested mapping too.
Space = Annotated[dict[str, SearchParam], BeforeValidator(flattened)]


def check_space(cfg: BaseModel, space: dict[str, SearchParam]) -> None:
    """Every entry names a path of `cfg` that exists (a `*` or a count: a list) and takes every
    value the entry can give it; `when` and a list's count come before the entries that
    depend on them. So a bad space fails here, with one line, before any training."""
    tree, declared = cfg.model_dump(), []
    for path, p in space.items():
        try:
            target = node(tree, path)
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"search.{path}: not a config path (such as model.learning_rate, trainer.batch_size, "
                             "model.conv_blocks.*.filters)") from None
        if EACH in path and list_of(path) in space and list_of(path) not in declared:
            raise ValueError(f"search.{path}: put it below search.{list_of(path)} (the count it depends on)")
        if p.when and (len(p.when) != 1 or next(iter(p.when)) not in declared):
            raise ValueError(f"search.{path}.when: name one entry declared above it (e.g. {{finetune.base: [best]}})")
        if isinstance(target, list):
            check_count(path, p)
        else:
            check_values(cfg, path, p)
        declared.append(path)


def check_count(path: str, p: SearchParam) -> None:
    whole = all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in candidates(p))
    if p.type not in ("int", "choice", "fixed") or not whole:
        raise ValueError(f"search.{path}: a list's length takes whole numbers from 0 (type int, choice or fixed)")


def check_values(cfg: BaseModel, path: str, p: SearchParam) -> None:
    """Each value validated where it lands (`trainer.epochs`), so an epochs of 0 in a space
    fails here, and not as a silently different trial. The model that holds it is checked
    alone: whether a conv stack fits the input (the context's `side`) is the whole trial's check."""
    *parents, leaf = parts(path)
    owner = cfg
    for part in parents:
        owner = owner[0 if part == EACH else part] if isinstance(owner, list) else getattr(owner, str(part))
    if p.type in ("float", "log_float") and takes_whole_numbers(owner, leaf):
        raise ValueError(f"search.{path}: type '{p.type}' draws fractions from {p.min:g} to {p.max:g}, and {path} "
                         "takes whole numbers; use type int (or choice)")
    for value in candidates(p):
        try:
            type(owner).model_validate({**owner.model_dump(), leaf: value}, context={"side": None})
        except ValidationError as e:
            msg = e.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"search.{path}: {value!r} is out of range for {path} ({msg})") from None


def takes_whole_numbers(owner: BaseModel, leaf: str | int) -> bool:
    """Whether the field `leaf` of `owner` is an int: its range's ends (1.0, 3.0) pass as ints,
    the fractions a trial draws between them would not."""
    field = type(owner).model_fields.get(str(leaf)) if isinstance(owner, BaseModel) else None
    return field is not None and int in (field.annotation, *get_args(field.annotation))
