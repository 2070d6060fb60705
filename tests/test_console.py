"""A healthy run's console: our lines only, no TensorFlow C++ log lines; a real TensorFlow
error line still shows (fmnist/batches.py says where the NodeDef line came from)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# What TensorFlow's C++ logging (absl) prints: `I0000 00:00:...`, `W0000`, `E0000`, and its banner.
CPP_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:|WARNING: All log messages before absl::InitializeLog)", re.M)

FIT = """
import sys
import fmnist  # first, as in every command: it sets TensorFlow's log level
import keras, numpy as np
from fmnist.batches import fit_inputs
from fmnist.training.fitting import seed_everything
seed_everything(0)
x, y = np.random.rand(300, 8).astype('float32'), np.random.randint(0, 2, 300)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation='softmax')])
model.compile('adam', 'sparse_categorical_crossentropy')
if sys.argv[1] == 'ours':
    model.fit(**fit_inputs(x, y, 32, seed=1), epochs=1, verbose=0)
else:  # Keras' own NumPy adapter, whose parallel map TensorFlow's op determinism rewrites
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
"""


def run(*argv: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_a_quick_sweep_prints_no_tensorflow_log_line(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    out = run("-m", "fmnist.sweep", "experiment=quick", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "registered models:/fmnist-cnn/1" in out.stdout
    assert not CPP_LOG.findall(out.stdout + out.stderr), (out.stdout + out.stderr)[:3000]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="a TensorFlow log line")
def test_our_batches_log_nothing_where_keras_adapter_logs_a_real_error_line():
    """The cause, shown: under op determinism Keras' adapter makes TensorFlow log an E-level
    line, and it still reaches the user (nothing hides TensorFlow's errors); our pipeline
    gives TensorFlow no reason to log."""
    theirs, ours = run("-c", FIT, "keras"), run("-c", FIT, "ours")
    assert theirs.returncode == ours.returncode == 0, theirs.stderr[-2000:] + ours.stderr[-2000:]
    assert re.search(r"^E0000 .*NodeDef mentions attribute use_unbounded_threadpool", theirs.stderr, re.M)
    assert not CPP_LOG.findall(ours.stderr), ours.stderr
