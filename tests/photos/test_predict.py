"""`python -m fmnist.predict` end to end with a small model trained here: good photos are
classified, every bad input gets its one line, the output files keep their schema, and
the served pyfunc answers a base64 photo."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from PIL import Image

from fmnist.config import Config, Limits, from_yaml, validate
from fmnist.config.loading import checked, compose
from fmnist.errors import ConfigError, NoModelError
from fmnist.images import reading
from fmnist.photos.predicting import collect, predict
from fmnist.reports.sheet import sheet_size
from fmnist.serving.classifier import SIGNATURE, log_photo_model, serving_config
from fmnist.serving.loading import load_classifier, load_keras
from fmnist.training.run import train
from tests.conftest import mlflow_store
from tests.images.test_crafted_images import CORRUPT_HEADERS, JUNK_EXIF, TEXT_BOMBS, b64
from tests.images.test_preprocess import LIMITS, first_photo, huge_png_header, photo_bytes

QUICK = ["experiment=quick", "data.subset=1000", "trainer.epochs=1", "trainer.verbose=0"]
GOOD = ("t-shirt", "pants", "shoes")
# the output file's columns: the served model's, with the file before and the table's extras after
COLUMNS = ["file", *SIGNATURE.outputs.input_names(), "top3", "low_confidence"]
# bad file -> the words its line must hold
BAD = {"zero.jpg": "empty file", "truncated.jpg": "truncated", "text.jpg": "not an image",
       "tiny.png": "1x1", "huge.png": "too large", "gif.jpg": "GIF is not an accepted format"}


@dataclass(frozen=True)
class Store:
    uri: str
    run_id: str      # an fmnist.train run: keras flavour at runs:/ID/model
    keras_file: Path
    photo_uri: str   # the same model as a PhotoClassifier, registered as fmnist-cnn@best


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """One quick model for the module, registered as the sweep would register it."""
    root = tmp_path_factory.mktemp("predict")
    with mlflow_store(root) as uri:
        run_id = train(validate(Config, compose("train", QUICK)))
        model = mlflow.keras.load_model(f"runs:/{run_id}/model")
        model.save(root / "model.keras")
        with mlflow.start_run(run_name="photo-model"):
            photo_uri = log_photo_model(model)
        version = mlflow.register_model(photo_uri, "fmnist-cnn").version
        MlflowClient().set_registered_model_alias("fmnist-cnn", "best", version)
        yield Store(uri, run_id, root / "model.keras", photo_uri)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Three shared photos, a CMYK copy of one, and every kind of bad file."""
    d = tmp_path_factory.mktemp("images")
    for folder in GOOD:
        shutil.copy(first_photo(folder), d / f"{folder}.jpg")
    Image.open(first_photo("dress")).convert("CMYK").save(d / "cmyk.jpg")
    (d / "zero.jpg").write_bytes(b"")
    whole = first_photo("shirt").read_bytes()
    (d / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (d / "text.jpg").write_text("not a photo\n")
    Image.new("RGB", (1, 1)).save(d / "tiny.png")
    (d / "huge.png").write_bytes(huge_png_header(20000, 20000))
    Image.open(first_photo("hat")).save(d / "gif.jpg", "GIF")  # a format Pillow knows, off the allow-list
    (d / "notes.txt").write_text("not an image name: skipped without a word\n")
    (d / "empty").mkdir()
    return d


def run_cli(args: list[str], store: Store, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri}
    return subprocess.run([sys.executable, "-m", "fmnist.predict", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_command_classifies_good_photos_and_names_each_bad_input(store, images, tmp_path):
    missing = tmp_path / "no-such-photo.jpg"
    out = run_cli([f"model=runs:/{store.run_id}/model", f"images=[{images},{images / 'empty'},{missing}]",
                   f"output={tmp_path / 'preds.csv'}", f"sheet={tmp_path / 'sheet.png'}"], store, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    problems = [line for line in out.stderr.splitlines() if line.startswith(("error:", "warning:"))]
    for name, words in BAD.items():
        assert [p for p in problems if name in p and words in p], f"{name}: no line saying {words!r}"
    assert any("empty" in p and "no images" in p for p in problems)
    assert any(str(missing) in p and "no such file" in p for p in problems)
    assert any("cmyk.jpg" in p and p.startswith("warning:") for p in problems)
    assert len(problems) == len(BAD) + 3, problems

    table = out.stdout.splitlines()
    assert table[0].split()[:3] == ["file", "class", "conf"]
    assert sorted(Path(line.split()[0]).name for line in table[1:]) == ["cmyk.jpg", "pants.jpg", "shoes.jpg",
                                                                       "t-shirt.jpg"]
    rows = list(csv.DictReader((tmp_path / "preds.csv").open()))
    assert list(rows[0]) == COLUMNS and len(rows) == 4 + len(BAD) + 2
    good = [r for r in rows if r["error"] == ""]
    assert len(good) == 4 and all(r["class_id"] == "-1" for r in rows if r["error"])
    assert all(len(json.loads(r["probabilities"])) == 10 and r["low_confidence"] in ("True", "False") for r in good)
    columns = checked("predict", ["images=x"]).predict.sheet_columns
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.size == sheet_size(4, columns)


def test_json_output_schema(store, images, tmp_path, capsys):
    cfg = checked("predict", ["model=best", f"images=[{images / 'pants.jpg'},{images / 'zero.jpg'}]",
                          f"output={tmp_path / 'preds.json'}"])
    assert predict(cfg) == 0
    good, bad = json.loads((tmp_path / "preds.json").read_text())
    assert list(good) == COLUMNS and list(bad) == COLUMNS
    assert isinstance(good["class_id"], int) and 0 <= good["confidence"] <= 1 and good["error"] == ""
    assert good["confidence"] == pytest.approx(max(good["probabilities"])) and len(good["probabilities"]) == 10
    top3 = [entry.rsplit(" ", 1) for entry in good["top3"].split("; ")]
    assert len(top3) == 3 and top3[0][0] == good["class_name"]
    assert [float(c) for _, c in top3] == sorted((float(c) for _, c in top3), reverse=True)
    assert good["low_confidence"] == (good["confidence"] < cfg.predict.min_confidence)
    assert bad == {"file": str(images / "zero.jpg"), "class_id": -1, "class_name": "", "confidence": 0.0,
                   "probabilities": [], "error": "empty file", "top3": "", "low_confidence": False}


def test_no_image_classified_exits_1(store, images):
    assert predict(checked("predict", ["model=best", f"images={images / 'zero.jpg'}"])) == 1


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_no_registered_model_says_to_run_the_sweep(images, tmp_path):
    empty = f"mlflow.tracking_uri=sqlite:///{tmp_path / 'empty.db'}"
    out = subprocess.run([sys.executable, "-m", "fmnist.predict", "model=best", f"images={images}", empty],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: model: "), out.stderr[-2000:]
    assert "python -m fmnist.sweep" in lines[0]
    assert not (tmp_path / "empty.db").exists(), "no empty store left behind"


def test_usage_errors_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fmnist.predict", "model=best"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "images" in out.stderr
    with pytest.raises(ConfigError, match="output"):
        checked("predict", ["images=a.jpg", "output=preds.txt"])


def test_every_model_reference_gives_the_same_model(store):
    x = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    expected = mlflow.keras.load_model(f"runs:/{store.run_id}/model").predict(x, verbose=0)
    for ref in (f"runs:/{store.run_id}/model", str(store.keras_file), "best", "models:/fmnist-cnn/1", store.photo_uri):
        assert np.allclose(load_keras(ref, "fmnist-cnn").predict(x, verbose=0), expected, atol=1e-6), ref


class Booby(mlflow.pyfunc.PythonModel):
    """A pyfunc whose pickle writes `target` when unpickled: what anyone who can write to an
    unauthenticated tracking server could register as fmnist-cnn@best."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return Path.write_text, (self.target, "the model's code ran\n")

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        return model_input


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_a_pickled_model_is_refused_and_writes_nothing(store, images, tmp_path):
    target = tmp_path / "pwned.txt"
    with tempfile.TemporaryDirectory() as tmp:  # a PhotoClassifier's artifacts and config: only the pickle differs
        keras_file = Path(tmp) / "model.keras"
        shutil.copy(store.keras_file, keras_file)
        with mlflow.start_run(run_name="booby-trapped"):
            uri = mlflow.pyfunc.log_model(name="model", python_model=Booby(target),
                                          artifacts={"keras_model": str(keras_file)},
                                          model_config=serving_config(), pip_requirements=[]).model_uri
    assert not target.exists(), "logged without loading it (pip_requirements given: none inferred)"
    version = mlflow.register_model(uri, "fmnist-booby").version
    MlflowClient().set_registered_model_alias("fmnist-booby", "best", version)
    with pytest.raises(NoModelError, match="pickled pyfunc model, not loaded"):
        load_classifier(uri, "fmnist-booby")
    out = run_cli(["model=best", "mlflow.registered_model=fmnist-booby", f"images={images / 'pants.jpg'}"],
                  store, tmp_path)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1 and "pickled pyfunc model" in errors[0], out.stderr[-2000:]
    assert not target.exists(), "unpickling ran the model's code"


def test_photo_model_is_logged_as_code_with_its_keras_file(store):
    local = Path(mlflow.artifacts.download_artifacts(store.photo_uri))
    pyfunc = Model.load(local / "MLmodel").flavors["python_function"]
    assert Path(pyfunc["model_code_path"]).name == "pyfunc.py" and "python_model" not in pyfunc
    assert not list(local.rglob("*.pkl")) and (local / pyfunc["artifacts"]["keras_model"]["path"]).is_file()


def b64_photo(folder: str) -> str:
    return base64.b64encode(first_photo(folder).read_bytes()).decode()


def test_pyfunc_answers_a_base64_photo(store):
    model = mlflow.pyfunc.load_model("models:/fmnist-cnn@best")
    out = model.predict(pd.DataFrame({"image": [b64_photo("pants"), "not base64!"]}))
    assert list(out.columns) == ["class_id", "class_name", "confidence", "probabilities", "error"]
    ok, bad = out.iloc[0], out.iloc[1]
    assert 0 <= ok["class_id"] <= 9 and ok["error"] == "" and len(ok["probabilities"]) == 10
    assert ok["confidence"] == pytest.approx(max(ok["probabilities"]))
    assert bad["class_id"] == -1 and "base64" in bad["error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    url: str         # /invocations of `mlflow models serve` on loopback
    limits: Limits   # the served model's, small so that requests at each cap stay small


@pytest.fixture(scope="module")
def served(store, tmp_path_factory) -> Iterator[Served]:
    """One `mlflow models serve` for every serve check: the store's model logged with small
    caps (max_bytes one past a multiple of 3, so a file one byte over still fits the base64
    cap and meets the byte cap; max_request_pixels what max_images such photos decode to),
    registered as fmnist-capped@best."""
    root = tmp_path_factory.mktemp("served")
    photo = first_photo("t-shirt").read_bytes()
    pixels = 4 * reading.decoded_pixels(photo, LIMITS, serving_config()["photo"]["work_size"])
    limits = from_yaml(Limits, "limits/default.yaml", max_bytes=3 * (len(photo) // 3 + 1) + 1, max_images=4,
                       max_request_pixels=pixels)
    with mlflow.start_run(run_name="capped-model"):
        uri = log_photo_model(keras.saving.load_model(store.keras_file), limits=limits)
    version = mlflow.register_model(uri, "fmnist-capped").version
    MlflowClient().set_registered_model_alias("fmnist-capped", "best", version)
    with serving("models:/fmnist-capped@best", store.uri, root) as url:
        yield Served(url, limits)


@contextmanager
def serving(model_uri: str, tracking_uri: str, root: Path) -> Iterator[str]:
    """`mlflow models serve` on loopback for the block: its /invocations address."""
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}, cwd=root, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=(root / "serve.log").open("w"))
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", server, root / "serve.log")
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def served_answer(model_uri: str, tracking_uri: str, tmp_path: Path, image_b64: str) -> dict:
    """`mlflow models serve` on loopback, asked about one base64 photo; its first prediction (one
    server per call: tests/photos/test_finetune.py serves the model it fine-tuned)."""
    with serving(model_uri, tracking_uri, tmp_path) as url:
        return ask(url, [image_b64])[1]["predictions"][0]


def ask(url: str, images: list[str]) -> tuple[int, dict]:
    """POST base64 images to a served model: the HTTP status and the JSON answer."""
    body = json.dumps({"dataframe_records": [{"image": i} for i in images]}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_photo(served):
    status, body = ask(served.url, [b64_photo("t-shirt")])
    answer = body["predictions"][0]
    assert status == 200 and 0 <= answer["class_id"] <= 9 and len(answer["probabilities"]) == 10
    assert answer["error"] == ""


def padded(data: bytes, size: int) -> bytes:
    """`data` grown to `size` bytes with zeros after the image's end, which decoders ignore."""
    return data + bytes(size - len(data))


@pytest.mark.slow
def test_served_model_caps_bytes_and_base64_at_and_just_over(served):
    cap = served.limits.max_bytes
    photo = first_photo("t-shirt").read_bytes()
    at_cap = base64.b64encode(padded(photo, cap)).decode()
    assert len(at_cap) == 4 * -(-cap // 3), "at the byte cap is at the base64 cap too"
    over_bytes = base64.b64encode(padded(photo, cap + 1)).decode()
    assert len(over_bytes) == len(at_cap), "one byte over still fits the base64 cap: the byte cap refuses it"
    gif = io.BytesIO()
    Image.open(first_photo("hat")).resize((64, 64)).save(gif, "GIF")  # small: under the byte cap
    status, body = ask(served.url, [at_cap, over_bytes, at_cap + "A", base64.b64encode(gif.getvalue()).decode()])
    ok, big, long, not_allowed = body["predictions"]
    assert status == 200 and ok["error"] == "" and 0 <= ok["class_id"] <= 9
    assert big["error"] == f"file is {cap + 1} bytes, above limits.max_bytes={cap}" and big["class_id"] == -1
    assert f"{len(at_cap) + 1} base64 characters" in long["error"] and long["class_id"] == -1
    assert "GIF is not an accepted format" in not_allowed["error"]


@pytest.mark.slow
def test_served_model_caps_images_per_request_at_and_just_over(served):
    most = served.limits.max_images
    status, body = ask(served.url, [b64_photo("t-shirt")] * most)  # the photo the byte cap was set from
    assert status == 200 and len(body["predictions"]) == most
    assert all(p["error"] == "" for p in body["predictions"])
    status, body = ask(served.url, [b64_photo("t-shirt")] * (most + 1))
    assert status == 400 and "predictions" not in body
    assert f"{most + 1} images in one request, above limits.max_images={most}" in body["message"]


@pytest.mark.slow
def test_served_model_answers_crafted_photos_row_by_row_without_a_stack_trace(served):
    fmt, header = CORRUPT_HEADERS["header.jpg"]
    status, body = ask(served.url, [b64_photo("t-shirt"), b64(TEXT_BOMBS["ztxt.png"]), b64(header),
                                    b64(JUNK_EXIF["exif.jpg"])])
    assert status == 200 and "stack_trace" not in body, body
    good, bomb, corrupt, exif = body["predictions"]
    assert good["error"] == "" and exif["error"] == "" and 0 <= exif["class_id"] <= 9
    assert "Decompressed data too large" in bomb["error"] and bomb["class_id"] == -1
    assert corrupt["error"] == f"corrupt {fmt} header" and corrupt["class_id"] == -1


@pytest.mark.slow
def test_served_model_caps_decoded_pixels_per_request_at_and_just_over(served):
    cap = served.limits.max_request_pixels
    width = 1600
    assert cap % width == 0, "a PNG of exactly cap pixels"
    at_cap = b64(photo_bytes("PNG", Image.new("L", (width, cap // width), 200)))
    status, body = ask(served.url, [at_cap])
    assert status == 200 and body["predictions"][0]["error"] == ""
    smallest = b64(photo_bytes("PNG", Image.new("L", (16, 16))))  # limits.min_side: 256 pixels
    status, body = ask(served.url, [at_cap, smallest])
    assert status == 400 and "predictions" not in body and "stack_trace" not in body
    assert (f"{cap + 256} pixels to decode in one request, above limits.max_request_pixels={cap}; "
            "send fewer or smaller images per request") in body["message"]


def test_a_model_with_a_lambda_layer_is_refused_by_every_reference(store, tmp_path):
    """safe_mode refuses a Lambda's bytecode; whichever way the model is named, that is a
    NoModelError (one `error: model:` line), as the registry's skipped holder needs too."""
    x = keras.Input((28, 28, 1))
    model = keras.Model(x, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda t: 1 - t)(x))))
    model.save(tmp_path / "lambda.keras")
    with mlflow.start_run(run_name="lambda-model"):
        uri = mlflow.keras.log_model(model, name="model", pip_requirements=[]).model_uri
    version = mlflow.register_model(uri, "fmnist-lambda").version
    for ref in (str(tmp_path / "lambda.keras"), uri, f"models:/fmnist-lambda/{version}"):
        with pytest.raises(NoModelError, match="cannot load \\(Requested the deserialization of a `Lambda` layer"):
            load_classifier(ref, "fmnist-lambda")


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_a_model_of_another_input_shape_is_one_model_line(store, images, tmp_path):
    x = keras.Input((32, 32, 3))
    keras.Model(x, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))).save(tmp_path / "rgb.keras")
    out = run_cli([f"model={tmp_path / 'rgb.keras'}", f"images={images / 'pants.jpg'}"], store, tmp_path)
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and "Traceback" not in out.stderr and len(lines) == 1, out.stderr[-2000:]
    assert lines[0] == (f"error: model: {tmp_path / 'rgb.keras'}: takes (32, 32, 3) inputs, not the (28, 28, 1) that "
                        "photo.input=fmnist photo.size=28 make (a model of this project takes (size, size, 1 or 3))")
    x = keras.Input((50,))
    keras.Model(x, keras.layers.Dense(10, activation="softmax")(x)).save(tmp_path / "vector.keras")
    cfg = checked("predict", [f"model={tmp_path / 'vector.keras'}", f"images={images / 'pants.jpg'}"])
    with pytest.raises(NoModelError, match="vector.keras: takes \\(50,\\) inputs, not the \\(28, 28, 1\\)"):
        predict(cfg)
    x = keras.Input((28, 28, 1))
    keras.Model(x, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(x))).save(tmp_path / "five.keras")
    cfg = checked("predict", [f"model={tmp_path / 'five.keras'}", f"images={images / 'pants.jpg'}"])
    with pytest.raises(NoModelError, match="five.keras: gives \\(5,\\) outputs, not one probability for each of 10"):
        predict(cfg)


def test_command_caps_bytes_per_image_at_and_just_over(store, tmp_path):
    photo = first_photo("t-shirt").read_bytes()
    cap = len(photo) + 10
    (tmp_path / "at.jpg").write_bytes(padded(photo, cap))
    (tmp_path / "over.jpg").write_bytes(padded(photo, cap + 1))
    cfg = checked("predict", ["model=best", f"images={tmp_path}", f"limits.max_bytes={cap}",
                                 f"output={tmp_path / 'preds.json'}"])
    assert predict(cfg) == 0
    rows = {Path(r["file"]).name: r for r in json.loads((tmp_path / "preds.json").read_text())}
    assert rows["at.jpg"]["error"] == "" and rows["at.jpg"]["class_id"] >= 0
    assert rows["over.jpg"]["error"] == f"file is {cap + 1} bytes, above limits.max_bytes={cap}"


@pytest.mark.timeout(60)  # before the fix, two loops made glob.glob's walk exponential: a hang
def test_a_symlink_loop_under_a_glob_lists_each_photo_once(tmp_path):
    tree = tmp_path / "photos"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(first_photo("pants"), tree / "a.jpg")
    shutil.copy(first_photo("shoes"), tree / "sub" / "b.jpg")
    (tree / "sub" / "up").symlink_to("..")        # photos/sub/up/sub/up/... : each photo again at each level
    (tree / "sub" / "again").symlink_to("../..")  # a second loop
    (tree / "link.jpg").symlink_to("a.jpg")       # the same photo by another name
    once = [str(tree / "a.jpg"), str(tree / "sub" / "b.jpg")]
    assert [r.file for r in collect([f"{tree}/**/*.jpg"], False)] == once
    assert [r.file for r in collect([str(tree)], True)] == once


def wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"mlflow models serve not up after {timeout} s: {log.read_text()[-2000:]}")
