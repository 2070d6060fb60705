"""fmnist.config.loading: each command's config composed and checked as its command line
would, and single YAML files read where no composition runs (the served model)."""

from __future__ import annotations

import pytest

from fmnist.config.loading import COMMANDS, checked, compose, from_yaml, packaged, renamed
from fmnist.config.photos import PhotoSettings


@pytest.mark.parametrize("command,overrides", [("train", []), ("sweep", ["experiment=quick"]),
                                               ("predict", ["model=best", "images=a.jpg"]), ("report", ["model=best"])])
def test_each_command_composes_its_file_and_checks_it_with_its_schema(command, overrides):
    assert isinstance(checked(command, overrides), COMMANDS[command].schema)


def test_model_goes_where_the_command_reads_a_trained_model():
    """`model=` is the architecture group for train and sweep, a trained model for predict."""
    assert renamed(["model=best", "x.model=y"], "model.ref") == ["model.ref=best", "x.model=y"]
    assert renamed(["model=wide"], None) == ["model=wide"]
    assert compose("predict", ["model=best", "images=a.jpg"]).model.ref == "best"


def test_one_yaml_file_checked_with_changes():
    assert packaged("photo/default.yaml")["size"] == from_yaml(PhotoSettings, "photo/default.yaml").size
    assert from_yaml(PhotoSettings, "photo/default.yaml", size=64).size == 64
