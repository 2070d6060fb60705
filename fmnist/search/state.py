"""A sweep's state folder, <sweep.dir>/<sweep.name> (a worker's: <sweep.name>-workers/<tuner_id>):
which folder a sweep may write in, and the only way anything in it is removed.

keras-tuner's own fresh start (overwrite=True) deletes the whole folder, whatever else it
holds. So fmnist never asks for it: a sweep writes only in a folder it created (and marked),
or in one the user explicitly gave it with `sweep.fresh=true` (which it then marks); a fresh
start removes only the files fmnist and keras-tuner write there, and leaves the rest."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from fmnist.errors import ConfigError

MARKER = "mlflow_parent_run.json"  # the sweep's parent run and config fingerprint: what resuming needs
OWNED = ".fmnist-sweep"  # in a folder fmnist created or was told to use, from before anything else is written
TRIAL = re.compile(r"trial_\d+")  # keras-tuner's folder for one trial: its trial.json, build config, checkpoint
CHIEF_TUNER = "tuner0"  # keras-tuner's id for a tuner that is not a distributed worker: tuner0.json


def claim(folder: Path, setting: str, fresh: bool) -> None:
    """Make `folder` a sweep's own: create it, or take one that is ours already; another folder
    only when `fresh` says so explicitly (sweep.fresh=true), and then only to add our files.
    `setting` (`sweep.name='x'`) names what chose the folder, for the one line that refuses it."""
    key = setting.split("=")[0]
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        if not folder.is_dir():
            raise ConfigError(f"{setting}: {folder} is a file, not a folder; choose another {key}") from None
        if not ours(folder) and not fresh:
            raise ConfigError(f"{setting}: {folder} exists and fmnist did not make it (it holds no {MARKER} or "
                              f"{OWNED}); choose another {key} or sweep.dir, or use it anyway with sweep.fresh=true: "
                              "fmnist then adds its files there and removes only those") from None
    except OSError as e:  # a file on the way (NotADirectoryError), no permission
        raise ConfigError(f"{setting}: cannot create the folder {folder} ({e.strerror})") from None
    try:
        if not (folder / OWNED).exists():
            (folder / OWNED).write_text("A sweep's state, made or taken by fmnist.sweep: a fresh start here removes "
                                        f"keras-tuner's files, trial_* folders and {MARKER}, and nothing else.\n")
    except OSError as e:
        raise ConfigError(f"{setting}: cannot write in the folder {folder} ({e.strerror})") from None


def ours(folder: Path) -> bool:
    """A folder fmnist made or was told to use (a sweep from before OWNED existed has its marker)."""
    return (folder / OWNED).exists() or (folder / MARKER).exists()


def clear(folder: Path, tuner_id: str = CHIEF_TUNER) -> None:
    """A fresh start in a claimed folder: remove the files a sweep writes there (keras-tuner's
    oracle, tuner and trial folders, our marker and its unfinished writes), nothing else."""
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink() and TRIAL.fullmatch(path.name):
            shutil.rmtree(path)
        elif not path.is_dir() and (path.name in (MARKER, "oracle.json", f"{tuner_id}.json")
                                    or path.name.startswith(f".{MARKER}.")):
            path.unlink()


def saved_marker(folder: Path, setting: str) -> dict[str, Any] | None:
    """What a sweep in `folder` recorded: its parent run, config fingerprint and tracking store;
    None where it recorded nothing. A marker that cannot be read is a line, and nothing is removed."""
    marker = folder / MARKER
    if not marker.exists():
        return None
    try:
        saved = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not JSON"
    else:
        missing = [k for k in ("run_id", "fingerprint") if not isinstance(saved, dict) or not isinstance(saved.get(k), str)]
        if not missing:
            return saved
        why = f"no {' or '.join(missing)}"
    raise ConfigError(f"{setting}: its marker {marker} is damaged ({why}), so the sweep cannot resume; rerun with "
                      "sweep.fresh=true to start it again (fmnist removes only its own files), or choose another "
                      "sweep.name")
