"""The JAX path: a quick sweep on `KERAS_BACKEND=jax` runs where TensorFlow is not installed,
and what it logs asks for JAX, not TensorFlow. This machine has TensorFlow, so the test hides
it from the import system, as a JAX-only machine would (Keras probes for it when seeding)."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest

HIDE_TENSORFLOW = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorFlow())
"""
SWEEP_WITHOUT_TENSORFLOW = HIDE_TENSORFLOW + """
from fmnist.config import Config, validate
from fmnist.config.loading import compose
from fmnist.kinds import sweep

code = sweep(validate(Config, compose("train", ["experiment=quick", "data.subset=1500", "tuner.max_trials=2"])))
import keras
print("RESULT", code, keras.backend.backend(), sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow"}))
"""


@pytest.mark.slow
def test_a_quick_sweep_on_jax_needs_no_tensorflow(store, tmp_path):
    pytest.importorskip("jax", reason="JAX installs from the package index: pip install jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", SWEEP_WITHOUT_TENSORFLOW], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert "RESULT 0 jax []" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    wanted = mlflow.artifacts.load_text("models:/fmnist-cnn@best/requirements.txt")
    assert "jax==" in wanted and "tensorflow" not in wanted


def test_without_the_backend_installed_a_command_says_which_extra_to_install(tmp_path):
    """TensorFlow is an extra (`fmnist[tensorflow]`), as JAX is: a machine with neither gets one line."""
    train = HIDE_TENSORFLOW + "sys.argv = ['fmnist.train', 'experiment=quick']\nfrom fmnist.train import main\nmain()"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", train], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: backend: Keras' backend 'tensorflow' is not installed: pip install 'fmnist[tensorflow]', "
        "or set KERAS_BACKEND to one that is (tensorflow, jax)"], out.stderr[-2000:]
