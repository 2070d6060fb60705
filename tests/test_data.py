"""The loader on the real Debian files: shapes, dtypes, split balance, corrupt copies; and the
download that repairs them, against a real HTTP server on loopback serving those files."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

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


def test_corrupt_deflate_stream_is_rejected_in_one_line(tmp_path):
    """A valid gzip header over a broken deflate stream raises zlib.error, not OSError."""
    f = tmp_path / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(b"")[:10] + b"\xff" * 64)  # block type 3: reserved, invalid
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz: not a readable gzip"):
        data.read_idx(f)


@contextmanager
def mirror(cut: dict[str, int]) -> Iterator[tuple[str, Counter]]:
    """A real HTTP server on 127.0.0.1 serving the four Debian files; yields its base URL and
    the requests per file. The first `cut[name]` requests for `name` get half the body under the
    full Content-Length, then the connection closes: a transfer cut short."""
    requests: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            if name not in data.FILES:
                self.send_error(404)
                return
            requests[name] += 1
            body = (data.DEBIAN_DIR / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if requests[name] <= cut.get(name, 0) else body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", requests
    finally:
        server.shutdown()
        server.server_close()


def assert_all_verified(d):
    assert sorted(p.name for p in d.iterdir()) == sorted(data.FILES), "leftover temporary files"
    for name in data.FILES:
        data.read_idx(d / name)


def test_download_fetches_again_a_transfer_cut_short(tmp_path, capsys):
    with mirror({"train-images-idx3-ubyte.gz": 1}) as (url, requests):
        assert data.download(tmp_path, urls=[url]) == tmp_path
    assert_all_verified(tmp_path)
    assert requests == {name: 2 if name.startswith("train-images") else 1 for name in data.FILES}
    assert len(capsys.readouterr().out.splitlines()) == 4, "one progress line per file"


def test_download_replaces_a_truncated_copy_and_keeps_good_ones(tmp_path):
    d = copy_dataset(tmp_path)
    f = d / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:5000])  # what an interrupted download used to leave
    with mirror({}) as (url, requests):
        data.download(d, urls=[url])
    assert_all_verified(d)
    assert requests == {"t10k-images-idx3-ubyte.gz": 1}, "verified copies are kept, not fetched"


def test_download_that_never_verifies_fails_in_one_line(tmp_path):
    name = "train-images-idx3-ubyte.gz"  # the first file: the download ends there
    with mirror({name: 99}) as (url, _):
        with pytest.raises(data.DataError) as e:
            data.download(tmp_path, urls=[url, url + "gone/"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / name))
    assert f"{url}{name} (not a readable gzip" in msg and f"{url}gone/{name} (HTTP Error 404" in msg
    assert not list(tmp_path.iterdir()), "no final file and no temporary file"


def test_download_into_an_unwritable_place_fails_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(data.DataError, match="cannot write the data there"):
        data.download(tmp_path / "file", urls=["http://127.0.0.1:9/"])


def test_default_urls_answer_the_way_they_are_written():
    """S3 *website* endpoints serve plain HTTP only: an https:// one can never answer."""
    assert data.DEFAULT_URLS[0] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in data.DEFAULT_URLS
    assert not [u for u in data.DEFAULT_URLS if u.startswith("https://") and ".s3-website" in u]


def test_download_command_repairs_a_truncated_copy(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    copy_dataset(d)
    f = d / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])
    with mirror({"train-labels-idx1-ubyte.gz": 1}) as (url, _):
        env = {**os.environ, "FMNIST_DATA_DIR": str(d), "FMNIST_DATA_URL": url}

        def command(*args):
            return subprocess.run([sys.executable, "-m", "fmnist.data", *args],
                                  capture_output=True, text=True, env=env, timeout=120)

        before, repair, after = command(), command("--download"), command()
    assert before.returncode == 1 and before.stderr.count("\n") == 1 and "train-labels" in before.stderr
    assert repair.returncode == 0, repair.stderr
    assert f"Fashion-MNIST verified in {d}" in repair.stdout and after.returncode == 0
    assert_all_verified(d)
