"""The loader on the real Debian files: shapes, dtypes, split balance, corrupt copies."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from fmnist.training import data


@pytest.fixture(scope="module")
def splits() -> data.Splits:
    return data.load_splits(val_fraction=0.1, seed=0)


def test_shapes_dtypes_and_range(splits):
    assert splits.x_train.shape == (54000, 28, 28, 1) and splits.x_val.shape == (6000, 28, 28, 1)
    assert splits.x_test.shape == (10000, 28, 28, 1)
    for x in (splits.x_train, splits.x_val, splits.x_test):
        assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    for y in (splits.y_train, splits.y_val, splits.y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


def test_validation_split_is_stratified_and_disjoint(splits):
    assert np.bincount(splits.y_val).tolist() == [600] * 10
    assert np.bincount(splits.y_train).tolist() == [5400] * 10
    train_rows = {r.tobytes() for r in splits.x_train[:2000]}
    assert not any(r.tobytes() in train_rows for r in splits.x_val), "validation images leaked into training"


def test_split_is_seeded():
    a, b = data.load_splits(subset=1000, seed=3), data.load_splits(subset=1000, seed=3)
    c = data.load_splits(subset=1000, seed=4)
    assert np.array_equal(a.y_val, b.y_val) and np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_subset_is_stratified():
    s = data.load_splits(subset=2000, seed=0)
    assert len(s.y_train) + len(s.y_val) == 2000
    assert np.bincount(s.y_train).tolist() == [180] * 10
    assert len(s.y_test) == 10000, "the test set is never subsampled"


def copy_dataset(tmp_path):
    for name in data.FILES:
        shutil.copy(data.DEBIAN_DIR / name, tmp_path / name)
    return tmp_path


def test_corrupted_copy_is_rejected_in_one_line(tmp_path):
    d = copy_dataset(tmp_path)
    raw = bytearray(gzip.decompress((d / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] ^= 0xFF  # one flipped label
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(data.DataError) as e:
        data.load_splits(str(d))
    msg = str(e.value)
    assert "\n" not in msg and "t10k-labels-idx1-ubyte.gz" in msg and "SHA-256" in msg and "apt-get" in msg


def test_truncated_gzip_is_rejected(tmp_path):
    d = copy_dataset(tmp_path)
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz: not a readable gzip"):
        data.load_arrays(str(d))


def test_missing_file_in_explicit_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz: file not found"):
        data.load_arrays()


def test_cli_reports_missing_data_in_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fmnist.train", "experiment=quick", f"data.dir={tmp_path}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "file not found" in errors[0] and "Traceback" not in out.stderr
