"""The config tree sits at the top of the checkout (conf/, its `experiment` group in experiments/) and ships
inside the package as fmnist.conf (pkg://fmnist.conf). Both ways of installing must find all of it:

- `pip install .` (not editable) into a fresh venv: every experiment composes, and
  `python -m fmnist.train|sweep experiment=quick` runs, from an empty folder elsewhere, so nothing is read from
  the checkout.
- `pip install -e .`, setuptools' default editable mode as scripts/setup.sh makes it, of a copy of the checkout:
  the configs are served from the copy both from its root (where its own fmnist/ comes first on sys.path) and from
  elsewhere, and an edit to experiments/quick.yaml or a new experiment shows at once (conf/experiment is a link to
  experiments/). The copy, never the checkout, is edited: other tests read the real files meanwhile.

The venvs see the system site-packages for the dependencies (no internet here); a venv's own site-packages comes
first, so its fmnist wins over any editable install of the checkout there (whose finder setuptools appends after
PathFinder, and after the venv's own)."""

from __future__ import annotations

import json
import os
import re
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
# The install itself, offline: the venv takes setuptools and the dependencies from the system site-packages.
PIP_INSTALL = ("-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check")


@dataclass(frozen=True)
class Installed:
    python: Path      # the venv's interpreter
    purelib: Path     # the venv's own site-packages
    folder: Path      # an empty folder outside the checkout, with its own MLflow store
    env: dict[str, str]

    def run(self, *args: str, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *args], cwd=cwd or self.folder, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def probe(self, cwd: Path | None = None) -> dict:
        done = self.run("-c", PROBE, timeout=180, cwd=cwd)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.splitlines()[-1])


# Where fmnist and its config tree are imported from, every YAML the tree holds, and the name each experiment
# composes to, as Hydra finds them through pkg://fmnist.conf.
PROBE = """
import importlib.resources, json, pathlib, fmnist
from hydra import compose, initialize_config_module
conf = pathlib.Path(str(importlib.resources.files("fmnist.conf")))
names = sorted(p.stem for p in (conf / "experiment").glob("*.yaml"))
with initialize_config_module("fmnist.conf", version_base="1.3"):
    composed = {n: compose("config", [f"experiment={n}"]).name for n in names}
print(json.dumps({"fmnist": fmnist.__file__, "conf": str(conf), "composed": composed,
                  "yaml": sorted(str(p.relative_to(conf)) for p in conf.glob("**/*.yaml"))}))
"""


def checkout_tree() -> list[str]:
    """Every YAML of the checkout's config tree, by its path inside fmnist.conf."""
    inside = [p.relative_to(REPO / "conf") for p in (REPO / "conf").glob("**/*.yaml")]
    groups = [str(p) for p in inside if p.parts[0] != "experiment"]  # conf/experiment: the link to experiments/
    return sorted(groups + [f"experiment/{p.name}" for p in (REPO / "experiments").glob("*.yaml")])


def experiments() -> set[str]:
    return {p.stem for p in (REPO / "experiments").glob("*.yaml")}


def venv(root: Path) -> tuple[Path, Path]:
    """A fresh venv that sees the system site-packages: its interpreter and its own site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return python, Path(purelib)


def install(python: Path, *args: str) -> None:
    pip = subprocess.run([str(python), *PIP_INSTALL, *args], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, f"pip install {' '.join(args)} failed:\n{pip.stdout[-3000:]}\n{pip.stderr[-3000:]}"


def empty_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """A folder outside any checkout, and an environment whose MLflow store is in it."""
    folder = root / "elsewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}", PYTHONUNBUFFERED="1")
    return folder, env


def clone(dest: Path) -> None:
    """The checkout's files as git sees them (tracked, or new and not ignored), links kept as links: what a fresh
    clone of the working tree would hold, and nothing an earlier build left."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        src, dst = REPO / name, dest / name
        if not (src.is_symlink() or src.is_file()):
            continue  # deleted in the working tree, not yet in the index
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("install")
    # Build from a copy, as from a fresh clone: pip's in-tree build writes build/ and *.egg-info,
    # which do not belong in the checkout.
    src = root / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=NOT_SOURCE)
    python, purelib = venv(root / "venv")
    install(python, str(src))
    folder, env = empty_folder(root)
    yield Installed(python, purelib, folder, env)


@pytest.fixture(scope="module")
def editable(tmp_path_factory) -> Iterator[tuple[Installed, Path]]:
    """An editable install of a copy of the checkout, and the copy."""
    root = tmp_path_factory.mktemp("editable")
    src = root / "src"
    clone(src)
    python, purelib = venv(root / "venv")
    install(python, "-e", str(src))
    folder, env = empty_folder(root)
    yield Installed(python, purelib, folder, env), src


def test_the_venv_imports_its_own_non_editable_copy_with_every_config(installed):
    found = installed.probe()
    print("fmnist.__file__ in the venv:", found["fmnist"])
    assert Path(found["fmnist"]).is_relative_to(installed.purelib), f"fmnist came from {found['fmnist']}"
    assert Path(found["conf"]).is_relative_to(installed.purelib), f"its configs came from {found['conf']}"
    expected = checkout_tree()
    assert found["yaml"] == expected, f"missing from the install: {sorted(set(expected) - set(found['yaml']))}"


def test_every_experiment_composes_from_an_empty_folder(installed):
    composed = installed.probe()["composed"]
    assert set(composed) == experiments()
    assert all(composed.values()), composed


def test_train_quick_from_an_empty_folder(installed):
    done = installed.run("-m", "fmnist.train", "experiment=quick", timeout=540)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_sweep_quick_from_an_empty_folder(installed):
    done = installed.run("-m", "fmnist.sweep", "experiment=quick", timeout=570)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("where", ["the copy's root", "an empty folder"])
def test_the_editable_install_serves_the_copys_config_tree(editable, where):
    installed, src = editable
    found = installed.probe(cwd=src if where == "the copy's root" else None)
    assert Path(found["fmnist"]) == src / "fmnist" / "__init__.py"
    assert Path(found["conf"]) == src / "conf"
    assert set(found["composed"]) == experiments()
    assert found["composed"]["quick"] == "quick"


def test_an_edit_to_an_experiment_and_a_new_one_show_at_once_in_the_editable_install(editable):
    installed, src = editable
    quick = src / "experiments" / "quick.yaml"
    edited, count = re.subn(r"(?m)^name: quick$", "name: edited", quick.read_text())
    assert count == 1, "experiments/quick.yaml has no line `name: quick` to edit"
    quick.write_text(edited)
    (src / "experiments" / "mine.yaml").write_text("# @package _global_\nname: mine\n")
    for cwd in (src, None):
        composed = installed.probe(cwd=cwd)["composed"]
        assert composed["quick"] == "edited", f"the edit did not show (cwd {cwd or installed.folder})"
        assert composed["mine"] == "mine", f"a new experiment did not show (cwd {cwd or installed.folder})"
