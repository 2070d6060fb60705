"""The promise of docs/reliability.md, walked command by command: every bad input of issue 22
given to the real commands ends in its `error:` or `warning:` line and an exit status, and no
output of any of them holds a Python traceback. Each case also has a test of its own that
checks what the line says; this one checks that none of them leaks a stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import pytest

from fmnist.config import TOKEN_ENV
from tests.images.test_crafted_images import crafted_folder

UNSET = "${oc.env:FMNIST_NO_SUCH_VARIABLE}"
TAGGED = "# a YAML tag: loading it must run nothing\n!!python/object/apply:os.system ['touch pwned']\n"


@dataclass
class Case:
    """`python -m fmnist.<command> *args` in a folder of its own, after `setup` lays out its files there."""

    command: str
    args: list[str]
    status: int
    setup: Callable[[Path], None] = lambda root: None
    env: dict[str, str] = field(default_factory=dict)


def tagged_config_dir(root: Path) -> None:
    (root / "conf" / "experiment").mkdir(parents=True)
    (root / "conf" / "experiment" / "tagged.yaml").write_text(TAGGED)


def not_our_folder(root: Path) -> None:
    (root / "sweeps" / "precious").mkdir(parents=True)
    (root / "sweeps" / "precious" / "notes.txt").write_text("mine\n")


def marker(text: str) -> Callable[[Path], None]:
    def lay(root: Path) -> None:
        (root / "sweeps" / "quick").mkdir(parents=True)
        (root / "sweeps" / "quick" / "mlflow_parent_run.json").write_text(text)
    return lay


def lambda_model(root: Path) -> None:
    x = keras.Input((28, 28, 1))
    y = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(lambda t: 1 - t)(x)))
    keras.Model(x, y).save(root / "lambda.keras")
    crafted_folder(root)


def crafted(root: Path) -> None:
    from fmnist.config import ModelConfig, from_yaml
    from fmnist.training.model import build_model

    build_model(from_yaml(ModelConfig, "model/cnn.yaml")).save(root / "tiny.keras")
    crafted_folder(root)


WORKER = ["distributed.role=worker", "distributed.address=127.0.0.1:1"]
CASES = {
    # config: found before any job module (TensorFlow) is imported
    **{f"{c}-unset-interpolation": Case(c, [f"name={UNSET}"], 2) for c in ("train", "sweep", "finetune")},
    "predict-unset-interpolation": Case("predict", ["model=best", f"images={UNSET}"], 2),
    "report-unset-interpolation": Case("report", ["model=best", f"out={UNSET}"], 2),
    **{f"{c}-yaml-tag": Case(c, ["--config-dir", "conf", "experiment=tagged"], 2, tagged_config_dir)
       for c in ("train", "sweep", "finetune")},
    "sweep-dir-way-up": Case("sweep", ["experiment=quick", "sweep.dir=missing/.."], 2),
    "worker-tuner-id-dot-dot": Case("sweep", ["experiment=quick", *WORKER, "distributed.tuner_id=.."], 2,
                                    env={TOKEN_ENV: "a-shared-secret-of-16+"}),
    "sweep-float-epochs": Case("sweep", ["experiment=quick", "search.trainer.epochs.type=float"], 2),
    # the job's own checks: the sweep's folder and marker, a model, crafted photos
    "sweep-folder-not-ours": Case("sweep", ["experiment=quick", "sweep.name=precious"], 2, not_our_folder),
    "sweep-marker-not-json": Case("sweep", ["experiment=quick"], 2, marker("{not json")),
    "sweep-marker-without-fingerprint": Case("sweep", ["experiment=quick"], 2, marker(json.dumps({"run_id": "x"}))),
    "predict-lambda-model": Case("predict", ["model=lambda.keras", "images=photos"], 1, lambda_model),
    "predict-crafted-photos": Case("predict", ["model=tiny.keras", "images=photos", "output=out.csv"], 0, crafted),
}


def run(case: Case, root: Path) -> subprocess.CompletedProcess:
    case.setup(root)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", **case.env}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", f"fmnist.{case.command}", *case.args], capture_output=True,
                          text=True, cwd=root, env=env, timeout=300)


@pytest.mark.slow
def test_no_command_shows_a_traceback_for_any_bad_input(tmp_path):
    roots = {name: tmp_path / name for name in CASES}
    for root in roots.values():
        root.mkdir()
    with ThreadPoolExecutor(2) as pool:  # each case is a process of its own; two at a time on two cores
        results = dict(zip(CASES, pool.map(lambda name: run(CASES[name], roots[name]), CASES), strict=True))
    problems = []
    for name, out in results.items():
        text = out.stdout + out.stderr
        if "Traceback" in text or out.returncode != CASES[name].status:
            problems.append(f"{name}: exit {out.returncode}, expected {CASES[name].status}:\n{text[-1500:]}")
        elif out.returncode and not any(line.startswith("error: ") for line in out.stderr.splitlines()):
            problems.append(f"{name}: exit {out.returncode} without an `error:` line:\n{out.stderr[-800:]}")
    assert not problems, "\n\n".join(problems)
    assert not any((root / "pwned").exists() for root in roots.values()), "a YAML tag ran code"
    assert (roots["sweep-folder-not-ours"] / "sweeps" / "precious" / "notes.txt").read_text() == "mine\n"
