"""The one way every entry point starts: compose with Hydra, validate, run, exit cleanly.

The YAML lives inside the package (`fmnist/conf`, found as `pkg://fmnist.conf`), so an
installed fmnist works from any folder; users add their own config folders with Hydra's
`--config-dir DIR` or `hydra.searchpath=[file://DIR]`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import hydra
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from pydantic import BaseModel

from fmnist.config import Config, PredictConfig, ReportCommand, validate
from fmnist.errors import EXIT_USAGE, ConfigError, FmnistError

CONF = "pkg://fmnist.conf"
BACKENDS = ("tensorflow", "jax")  # the Keras backends fmnist runs on, each an extra of the package


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


def entry(command: str, job: str) -> Callable[[], None]:
    """A Hydra main for `job` ("package.module:function"): the composed config is checked
    against the command's schema before the job's module is imported (so a config error
    costs no TensorFlow start), and expected failures print one `error:` line instead of a
    traceback. The job's int result is the exit status (anything else: 0)."""
    c = COMMANDS[command]
    composing = Composing()

    @hydra.main(config_path=CONF, config_name=c.config_name, version_base="1.3")
    def hydra_main(cfg: DictConfig) -> None:
        composing.end()
        try:
            typed = validate(c.schema, cfg)
        except ConfigError as e:
            for line in str(e).splitlines():
                print(f"error: config: {line}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        try:
            module, function = job.split(":")
            result = getattr(imported(module), function)(typed)
            sys.exit(result if isinstance(result, int) else 0)
        except FmnistError as e:  # found only once the job looks around (data, a resumed sweep, a chief)
            print(f"error: {e.label}: {e}", file=sys.stderr)
            sys.exit(e.exit_code)

    def main() -> None:
        sys.argv[1:] = renamed(sys.argv[1:], c.model_key)
        with composing:
            hydra_main()

    return main


class Composing:
    """Hydra's own report of a config it cannot compose (an unknown group option, a malformed
    override, a YAML tag in a --config-dir file) is several lines, or a traceback, and exit 1.
    With its switch HYDRA_FULL_ERROR on, Hydra raises instead, and the block ends in one
    `error: config:` line and exit 2, as our own config errors do. The switch is on from the
    block's start until the job starts (`end`): the job's own failures stay Hydra's to report,
    and no process the job starts inherits it. A user who set it gets Hydra's tracebacks."""

    SWITCH = "HYDRA_FULL_ERROR"
    active, saved = False, None

    def __enter__(self) -> None:
        self.saved = os.environ.get(self.SWITCH)
        self.active = self.saved != "1"
        if self.active:
            os.environ[self.SWITCH] = "1"

    def end(self) -> None:
        if self.active:
            os.environ.pop(self.SWITCH, None)
            if self.saved is not None:
                os.environ[self.SWITCH] = self.saved
            self.active = False

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        failed = self.active and isinstance(error, Exception)  # raised before the job started
        self.end()
        if failed:
            print(f"error: config: {composition_error(error)}", file=sys.stderr)
            sys.exit(EXIT_USAGE)


def composition_error(e: Exception) -> str:
    """Hydra's, OmegaConf's or YAML's message on one line: the file and line of a YAML error,
    the options a missing one could have been, no search path listing."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        return f"{mark.name}, line {mark.line + 1}: " + ": ".join(filter(None, [e.context, e.problem]))
    if isinstance(e, OverrideParseException):
        return f"{e.override}: {e.message.splitlines()[0]}"
    lines = [line.strip() for line in str(e).split("Config search path:")[0].splitlines() if line.strip()]
    if isinstance(e, MissingConfigException) and e.options:
        return f"{lines[0]} (options: {', '.join(e.options)})"
    return " ".join(lines) or type(e).__name__


def imported(module: str) -> ModuleType:
    """The job's module; without the Keras backend it needs, one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name not in BACKENDS:
            raise
        print(f"error: backend: Keras' backend {e.name!r} is not installed: pip install 'fmnist[{e.name}]', or set "
              f"KERAS_BACKEND to one that is ({', '.join(BACKENDS)})", file=sys.stderr)
        sys.exit(EXIT_USAGE)


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
    with initialize_config_module(config_module="fmnist.conf", version_base="1.3"):
        return hydra_compose(c.config_name, overrides=renamed(overrides, c.model_key))


def config(command: str, overrides: list[str]) -> Any:
    """The checked config that command would run with (for benches and tests)."""
    return validate(COMMANDS[command].schema, compose(command, overrides))

