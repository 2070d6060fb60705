"""The one way every entry point starts: compose with Hydra, validate, run, exit cleanly.

What each command composes, and how, is fmnist.config.loading's (`COMMANDS`); this module
adds what only a process started from the command line needs: Hydra's main, one `error:`
line and an exit status for every expected failure, and a missing Keras backend named.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any, Callable

import hydra
import yaml
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig

from fmnist.config import validate
from fmnist.config.loading import COMMANDS, CONF_MODULE, renamed
from fmnist.errors import EXIT_USAGE, ConfigError, FmnistError

BACKENDS = ("tensorflow", "jax")  # the Keras backends fmnist runs on, each an extra of the package


def entry(command: str, job: str) -> Callable[[], None]:
    """A Hydra main for `job` ("package.module:function"): the composed config is checked
    against the command's schema before the job's module is imported (so a config error
    costs no TensorFlow start), and expected failures print one `error:` line instead of a
    traceback. The job's int result is the exit status (anything else: 0)."""
    c = COMMANDS[command]
    composing = Composing()

    @hydra.main(config_path=f"pkg://{CONF_MODULE}", config_name=c.config_name, version_base="1.3")
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
