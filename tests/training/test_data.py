"""The loader on the real Debian files: shapes, dtypes, split balance, corrupt copies; and the
download that repairs them, against a real HTTP server on loopback serving those files."""

from __future__ import annotations

import gzip
import os
import shlex
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

from fmnist import data as fmnist_data
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


SOURCE = data.DEBIAN_DIR  # the real files, also where a test puts a fake system copy


def copy_dataset(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in data.FILES:
        shutil.copy(SOURCE / name, tmp_path / name)
    return tmp_path


def flip_a_label(d):
    raw = bytearray(gzip.decompress((d / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] ^= 0xFF
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))


def test_corrupted_copy_is_rejected_in_one_line_that_says_how_to_repair_it(tmp_path):
    """An explicit folder (data.dir) is where `--download` must fetch: the line says so, and
    doing what it says repairs the folder."""
    d = copy_dataset(tmp_path / "my data")
    flip_a_label(d)
    with pytest.raises(data.DataError) as e:
        data.load_splits(str(d))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{d / 't10k-labels-idx1-ubyte.gz'}: SHA-256")
    advice = msg.split("run `")[1].split("`")[0]
    assert advice == f"FMNIST_DATA_DIR='{d}' python -m fmnist.data --download"
    with mirror({}) as (url, _):  # the advice as a shell runs it, against a mirror on loopback
        argv = shlex.split(advice.replace("python -m", f"{sys.executable} -m"))
        done = subprocess.run(["env", f"FMNIST_DATA_URL={url}", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data.load_splits(str(d), subset=1000)


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


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
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
            body = (SOURCE / name).read_bytes()
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


@pytest.fixture
def corrupt_system_copy(tmp_path, monkeypatch):
    """A system copy (Debian's place) with one flipped label, and an empty Keras cache."""
    system = copy_dataset(tmp_path / "debian")
    flip_a_label(system)
    monkeypatch.setattr(data, "DEBIAN_DIR", system)
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path / "cache")
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    return system


def test_download_repairs_a_corrupt_system_copy_and_lookup_then_reads_the_verified_one(corrupt_system_copy, tmp_path,
                                                                                       monkeypatch, capsys):
    system, cache = corrupt_system_copy, tmp_path / "cache"
    before = (system / "t10k-labels-idx1-ubyte.gz").read_bytes()
    with mirror({}) as (url, _):
        monkeypatch.setenv("FMNIST_DATA_URL", url)
        monkeypatch.setattr(sys, "argv", ["fmnist.data", "--download"])
        fmnist_data.main()
    assert capsys.readouterr().out.splitlines()[-1] == f"Fashion-MNIST verified in {cache}"
    assert data.find_data_dir() == cache and data.load_arrays()[3].shape == (10000,)
    assert (system / "t10k-labels-idx1-ubyte.gz").read_bytes() == before, "the system copy is not ours to touch"
    assert f"note: the copy in {system} fails verification; using the verified one in {cache}" in capsys.readouterr().err


def test_a_corrupt_system_copy_is_one_line_that_says_what_repairs_it(corrupt_system_copy, tmp_path, monkeypatch):
    """Not `apt-get install` (it is installed) and not a bare `--download` that lookup would ignore."""
    monkeypatch.setattr(sys, "argv", ["fmnist.data"])
    with pytest.raises(data.DataError) as e:
        fmnist_data.main()
    msg = str(e.value)
    assert msg.startswith(f"{corrupt_system_copy / 't10k-labels-idx1-ubyte.gz'}: SHA-256") and "\n" not in msg
    assert msg.endswith("; reinstall it with `apt-get install --reinstall dataset-fashion-mnist`, or run `python -m "
                        f"fmnist.data --download` (it fetches into {tmp_path / 'cache'}, which is then used instead)")
