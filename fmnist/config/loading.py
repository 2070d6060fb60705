"""Where the YAML comes from and how a command's config is made of it.

The YAML tree is the package `fmnist.conf` (found by Hydra as `pkg://fmnist.conf`), so an
installed fmnist works from any folder; users add their own config folders with Hydra's
`--config-dir DIR` or `hydra.searchpath=[file://DIR]`. Each command composes one top file
and checks it against one schema (`COMMANDS`); `compose` and `checked` do what the command
line does, for code that needs a command's config without running it (the plain config a
trial's reproducing command starts from, seed_final, tests and benches).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel

from fmnist.config.commands import PredictConfig, ReportCommand
from fmnist.config.sweep import Config
from fmnist.config.validation import M, validate

CONF_MODULE = "fmnist.conf"


@dataclass(frozen=True)
class Command:
    """What a command composes: its top config file, the schema that checks it, and where
    its `model=REF` goes (see `renamed`)."""

    config_name: str
    schema: type[BaseModel]
    model_key: str | None = None


COMMANDS = {
    "train": Command("config", Config),
    "sweep": Command("config", Config),
    "finetune": Command("config", Config, "finetune.base"),
    "predict": Command("predict", PredictConfig, "model.ref"),
    "report": Command("report", ReportCommand, "model_ref"),
}


def renamed(argv: list[str], model_key: str | None) -> list[str]:
    """`model=REF` -> `<model_key>=REF` for the commands that take a trained model: Hydra would
    read `model=` as a choice in the conf/model/ group (the architectures train and sweep build)."""
    if not model_key:
        return argv
    return [f"{model_key}={a.removeprefix('model=')}" if a.startswith("model=") else a for a in argv]


def compose(command: str, overrides: list[str]) -> DictConfig:
    """The raw config `python -m fmnist.<command> overrides...` would compose."""
    c = COMMANDS[command]
    if GlobalHydra.instance().is_initialized():  # inside a command: Hydra already has the config tree
        return hydra_compose(c.config_name, overrides=renamed(overrides, c.model_key))
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return hydra_compose(c.config_name, overrides=renamed(overrides, c.model_key))


def checked(command: str, overrides: list[str]) -> Any:
    """The checked config `python -m fmnist.<command> overrides...` would run with."""
    return validate(COMMANDS[command].schema, compose(command, overrides))


def packaged(path: str) -> dict[str, Any]:
    """One YAML file of the config tree (`photo/default.yaml`) as a dict: what the served
    model reads, where no Hydra composition runs."""
    return OmegaConf.to_container(OmegaConf.create(resources.files(CONF_MODULE).joinpath(path).read_text()))


def from_yaml(schema: type[M], path: str, **changes: Any) -> M:
    """The settings in one YAML file of the config tree (`photo/default.yaml`), checked, with
    `changes`: for code that runs outside a composed config (the served model, tests)."""
    return schema.model_validate({**packaged(path), **changes})
