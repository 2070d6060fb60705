"""`pip install .` (not editable) into a fresh venv, then `python -m fmnist.train|sweep experiment=quick`
from an empty folder elsewhere: the config tree ships inside the package (pkg://fmnist.conf), so
nothing is read from the checkout. The venv sees the system site-packages for the dependencies
(no internet here); its own site-packages comes first on sys.path, so its fmnist wins over any
editable install of the checkout there (whose finder setuptools appends after PathFinder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# What a fresh clone would not have, or what is not the package's business.
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                   ".ruff_cache", "mlruns", "mlflow.db", ".venv", "sweeps", "outputs", "multirun",
                                   "tracking")


@dataclass(frozen=True)
class Installed:
    python: Path      # the venv's interpreter
    purelib: Path     # the venv's own site-packages
    folder: Path      # an empty folder outside the checkout, with its own MLflow store
    env: dict[str, str]

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *args], cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=timeout)


# Where fmnist is imported from, then every YAML its config tree holds there.
PROBE = """
import importlib.resources, pathlib, fmnist
print(fmnist.__file__)
conf = pathlib.Path(str(importlib.resources.files("fmnist.conf")))
print(*sorted(str(p.relative_to(conf)) for p in conf.rglob("*.yaml")), sep="\\n")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("install")
    # Build from a copy, as from a fresh clone: pip's in-tree build writes build/ and *.egg-info,
    # which do not belong in the checkout.
    src = root / "src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "--disable-pip-version-check", str(src)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, f"pip install . failed:\n{pip.stdout[-3000:]}\n{pip.stderr[-3000:]}"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    folder = root / "elsewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}", PYTHONUNBUFFERED="1")
    yield Installed(python, purelib, folder, env)


def test_the_venv_imports_its_own_non_editable_copy_with_every_config(installed):
    probe = installed.run("-c", PROBE, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    where, *shipped = probe.stdout.splitlines()
    print("fmnist.__file__ in the venv:", where)
    assert Path(where).is_relative_to(installed.purelib), f"fmnist came from {where}, not {installed.purelib}"
    assert not Path(where).is_relative_to(REPO)
    conf = REPO / "fmnist" / "conf"
    expected = sorted(str(p.relative_to(conf)) for p in conf.rglob("*.yaml"))
    assert sorted(shipped) == expected, f"missing from the install: {sorted(set(expected) - set(shipped))}"


def test_train_quick_from_an_empty_folder(installed):
    done = installed.run("-m", "fmnist.train", "experiment=quick", timeout=540)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_sweep_quick_from_an_empty_folder(installed):
    done = installed.run("-m", "fmnist.sweep", "experiment=quick", timeout=570)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
