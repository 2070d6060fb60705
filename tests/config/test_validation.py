"""fmnist.config.validation on a small schema: each of pydantic's errors becomes one line with
the key as the user types it, whatever the schema (lists, mappings, a tagged union)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

import pytest
from omegaconf import OmegaConf
from pydantic import Field

from fmnist.config.strict import Strict
from fmnist.config.validation import validate, walk
from fmnist.errors import ConfigError


class Fast(Strict):
    kind: Literal["fast"]
    steps: int = Field(ge=1)


class Slow(Strict):
    kind: Literal["slow", "slower"]
    hours: float = Field(gt=0)


class Item(Strict):
    size: int = Field(ge=1)


class Plan(Strict):
    name: str
    items: list[Item]
    extra: dict[str, Item]
    engine: Annotated[Union[Fast, Slow], Field(discriminator="kind")]


GOOD = {"name": "p", "items": [{"size": 1}], "extra": {"a": {"size": 2}}, "engine": {"kind": "slower", "hours": 1.5}}


def problems(**changes) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate(Plan, {**GOOD, **changes}, prefix="plan.")
    return str(e.value).splitlines()


def test_a_good_config_is_the_schemas_object():
    assert validate(Plan, OmegaConf.create(GOOD)).engine.hours == 1.5


def test_every_problem_is_one_line_keyed_as_typed():
    assert problems(items=[{"size": 1}, {"size": 0}], extra={"a": {"size": "x"}}) == [
        "plan.items[1].size=0: Input should be greater than or equal to 1",
        "plan.extra.a.size='x': Input should be a valid integer, unable to parse string as an integer"]


def test_a_tagged_unions_tag_picks_the_member_and_leaves_the_key():
    assert problems(engine={"kind": "slow", "hours": 0}) == ["plan.engine.hours=0: Input should be greater than 0"]
    assert problems(engine={"kind": "fast", "steps": 1, "hours": 2}) == [
        "plan.engine.hours: unknown key; allowed keys: kind, steps"]
    assert walk(Plan, ("engine", "slower", "hours")) == (Slow, ("engine", "hours"))


def test_an_unknown_key_lists_the_keys_allowed_there():
    assert problems(items=[{"size": 1, "colour": "red"}]) == ["plan.items[0].colour: unknown key; allowed keys: size"]


def test_an_interpolation_that_cannot_resolve_names_the_key():
    cfg = OmegaConf.create({**GOOD, "name": "${no.such.key}"})
    with pytest.raises(ConfigError, match=r"^name='\$\{no.such.key\}': cannot resolve: Interpolation key"):
        validate(Plan, cfg)
