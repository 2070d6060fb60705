"""The one way every entry point starts: compose with Hydra, validate, run, exit cleanly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, TypeVar

import hydra
from omegaconf import DictConfig
from pydantic import BaseModel

from fmnist.config import ConfigError, validate
from fmnist.data import DataError
from fmnist.distributed import DistributedError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
S = TypeVar("S", bound=BaseModel)

# exit status: 0 done, 1 the job failed (bad data, nothing predicted), 2 usage / config error
EXIT_FAILED, EXIT_USAGE = 1, 2


def entry(config_name: str, schema: type[S], job: Callable[[S], int | None]) -> Callable[[], None]:
    """A Hydra main for `job`: the composed config is checked against `schema` before `job`
    starts, and expected failures print one `error:` line instead of a traceback."""

    @hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")
    def main(cfg: DictConfig) -> None:
        try:
            typed = validate(schema, cfg)
        except ConfigError as e:
            for line in str(e).splitlines():
                print(f"error: config: {line}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        try:
            sys.exit(job(typed) or 0)
        except ConfigError as e:  # found only once the job looks around (a resumed sweep, a chief)
            print(f"error: config: {e}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except DataError as e:
            print(f"error: data: {e}", file=sys.stderr)
            sys.exit(EXIT_FAILED)
        except DistributedError as e:
            print(f"error: distributed: {e}", file=sys.stderr)
            sys.exit(EXIT_FAILED)

    return main
