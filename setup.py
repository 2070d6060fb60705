"""The package list, kept in code because pyproject.toml's `packages.find` only finds packages inside their own
folder: fmnist's code under fmnist/, plus the config tree at the top of the repository, which ships as fmnist.conf
(pkg://fmnist.conf) so that an installed fmnist finds its configs from any folder. pyproject.toml maps the folders
(`package-dir`: conf/ and experiments/) and ships their YAML (`package-data`)."""

from pathlib import Path

from setuptools import find_packages, setup

CONF = Path(__file__).resolve().parent / "conf"
# A config group is a folder of YAML. conf/experiment is a link to experiments/ (for the editable install), and
# that group ships under its own mapping, so the link is skipped here.
GROUPS = sorted({p.parent.name for p in CONF.glob("*/*.yaml") if not p.parent.is_symlink()})

setup(packages=[*find_packages(include=["fmnist", "fmnist.*"]), "fmnist.conf", "fmnist.conf.experiment",
                *(f"fmnist.conf.{group}" for group in GROUPS)])
