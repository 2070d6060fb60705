"""fmnist.config.space on its own: what each kind of entry can give, what makes an entry
incomplete, and the checks of a space against any schema (here a small one, not Config)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, ValidationError

from fmnist.config.space import SearchParam, candidates, check_space, flattened
from fmnist.config.strict import Strict


@pytest.mark.parametrize("entry,values", [
    ({"type": "choice", "values": ["adam", "sgd"]}, ["adam", "sgd"]),
    ({"type": "int", "min": 2, "max": 5, "step": 1}, [2, 5]),
    ({"type": "float", "min": 0.0, "max": 0.4, "step": 0.1}, [0.0, 0.4]),
    ({"type": "log_float", "min": 1e-4, "max": 1e-2}, [1e-4, 1e-2]),
    ({"type": "boolean"}, [False, True]),
    ({"type": "fixed", "value": "same"}, ["same"]),
], ids=lambda v: v["type"] if isinstance(v, dict) else "")
def test_each_kind_gives_its_values_or_its_ends(entry, values):
    assert candidates(SearchParam.model_validate(entry)) == values


def test_an_int_entrys_ends_are_ints():
    assert all(type(v) is int for v in candidates(SearchParam(type="int", min=2.0, max=5.0)))


@pytest.mark.parametrize("entry,reason", [
    ({"type": "choice"}, "type 'choice' needs a non-empty 'values' list"),
    ({"type": "choice", "values": []}, "type 'choice' needs a non-empty 'values' list"),
    ({"type": "fixed"}, "type 'fixed' needs a 'value'"),
    ({"type": "float", "min": 0.1}, "type 'float' needs 'min' and 'max'"),
    ({"type": "int", "min": 5, "max": 2}, "min 5 is above max 2"),
    ({"type": "log_float", "min": 0, "max": 1}, "type 'log_float' needs min > 0"),
    ({"type": "float", "min": 0, "max": 1, "step": 0}, "step 0 must be above 0"),
    ({"type": "int", "min": 1, "max": 3, "step": 0.5}, "type 'int' takes whole numbers for min, max and step"),
    ({"type": "gaussian", "values": [1]}, "Input should be 'choice', 'int', 'float', 'log_float', 'boolean' or 'fixed'"),
    ({"type": "boolean", "default": True}, "Extra inputs are not permitted"),
])
def test_an_incomplete_entry_says_what_its_kind_needs(entry, reason):
    with pytest.raises(ValidationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        SearchParam.model_validate(entry)


def test_a_nested_space_is_read_at_config_paths():
    nested = {"photo": {"size": {"type": "choice", "values": [48, 64]}}, "model.learning_rate": {"type": "boolean"}}
    assert flattened(nested) == {"photo.size": {"type": "choice", "values": [48, 64]},
                                 "model.learning_rate": {"type": "boolean"}}
    assert flattened(None) is None  # not a mapping: left for validation to reject


class Block(Strict):
    filters: int = Field(ge=1)
    padding: Literal["same", "valid"]


class Net(Strict):
    blocks: list[Block]
    rate: float = Field(gt=0.0, le=1.0)


NET = Net(blocks=[Block(filters=8, padding="same")], rate=0.01)


def test_a_space_that_fits_passes():
    entries = {"blocks": {"type": "int", "min": 1, "max": 3},
               "blocks.*.filters": {"type": "choice", "values": [8, 16]},
               "blocks.*.padding": {"type": "fixed", "value": "valid", "when": {"blocks": [1]}},
               "rate": {"type": "log_float", "min": 1e-3, "max": 0.1}}
    check_space(NET, {path: SearchParam.model_validate(entry) for path, entry in entries.items()})


@pytest.mark.parametrize("entries,line", [
    ({"width": {"type": "int", "min": 1, "max": 2}}, "search.width: not a config path"),
    ({"blocks.*.filters": {"type": "choice", "values": [8, 0]}}, "search.blocks.*.filters: 0 is out of range"),
    ({"rate": {"type": "float", "min": 0.0, "max": 0.5}}, "search.rate: 0.0 is out of range for rate"),
    ({"blocks.*.filters": {"type": "float", "min": 8, "max": 16}},
     "search.blocks.*.filters: type 'float' draws fractions from 8 to 16, and blocks.*.filters takes whole numbers"),
    ({"blocks": {"type": "float", "min": 1, "max": 2}}, "search.blocks: a list's length takes whole numbers"),
    ({"blocks.*.filters": {"type": "choice", "values": [8]}, "blocks": {"type": "int", "min": 1, "max": 2}},
     "search.blocks.*.filters: put it below search.blocks"),
    ({"rate": {"type": "fixed", "value": 0.1, "when": {"blocks": [1]}}}, "search.rate.when: name one entry declared"),
], ids=["no-such-path", "out-of-range-choice", "out-of-range-end", "fractions-at-an-int", "fraction-count",
        "item-above-count", "when-undeclared"])
def test_a_space_that_does_not_fit_is_one_line_naming_the_entry(entries, line):
    with pytest.raises(ValueError) as e:
        check_space(NET, {path: SearchParam.model_validate(entry) for path, entry in entries.items()})
    assert str(e.value).startswith(line) and "\n" not in str(e.value)


def test_the_module_is_a_leaf():
    """It imports pydantic and config paths only: any schema may use it, and the search engine
    may read entries without the sweep's schema."""
    tree = ast.parse((Path(__file__).parents[2] / "fmnist" / "config" / "space.py").read_text())
    ours = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module.startswith("fmnist")}
    assert ours == {"fmnist.config.paths", "fmnist.config.strict"}
