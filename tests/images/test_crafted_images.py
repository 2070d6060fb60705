"""Hostile files, made for real: a PNG whose compressed text inflates past Pillow's limit, junk
EXIF, corrupt headers, a FIFO, a socket, a device, a file name that is not UTF-8. Each one is
that image's row (an error, or a warning when its pixels are fine); none ends a run or a request,
and every good photo beside them is classified."""

from __future__ import annotations

import base64
import csv
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from fmnist.config import Limits, ModelConfig, from_yaml
from fmnist.config.loading import checked
from fmnist.errors import ImageError
from fmnist.images import reading
from fmnist.images.reading import read_image
from fmnist.photos.predicting import predict
from fmnist.serving.classifier import KERAS_ARTIFACT, PhotoClassifier, serving_config
from fmnist.training.model import build_model
from tests.images.test_preprocess import LIMITS, first_photo, photo_bytes

GOOD = ("t-shirt", "pants", "shoes")
NON_UTF8 = b"caf\xe9.jpg"  # Latin-1 'café.jpg': not UTF-8
SHOWN = "caf\\xe9.jpg"     # how the table, the CSV and the JSON write its name


# ---- the crafted files ------------------------------------------------------------------------

def chunk(kind: bytes, body: bytes) -> bytes:
    """A PNG chunk: length, type, body, and the CRC of type and body."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with(kind: bytes, body: bytes) -> bytes:
    """A real 64x64 PNG with one more chunk right after IHDR (before the pixels), where
    Pillow reads it when the file is opened."""
    png = photo_bytes("PNG", Image.new("RGB", (64, 64), (180, 40, 40)))
    return png[:33] + chunk(kind, body) + png[33:]  # 8 signature + 25 IHDR


BOMB = zlib.compress(bytes(16 * 2**20), 9)  # ~16 KB that inflate to 16 MiB, past Pillow's 1 MiB MAX_TEXT_CHUNK
TEXT_BOMBS = {  # each: its chunk's header fields, then the compressed data
    "ztxt.png": png_with(b"zTXt", b"Comment\0\0" + BOMB),              # keyword, method
    "itxt.png": png_with(b"iTXt", b"Comment\0\1\0\0\0" + BOMB),        # keyword, compressed, method, lang, key
    "iccp.png": png_with(b"iCCP", b"sRGB\0\0" + BOMB),                 # profile name, method
}


def with_app1(jpeg: bytes, body: bytes) -> bytes:
    """`jpeg` with an APP1 segment right after its start-of-image marker."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def junk_exif_jpeg(folder: str) -> bytes:
    """A real photo with an APP1 Exif segment of junk. Saved with a JFIF density, as many are,
    so Pillow does not read the EXIF (and drop its error) while looking for the DPI."""
    return with_app1(photo_bytes("JPEG", Image.open(first_photo(folder)), dpi=(72, 72)), b"Exif\0\0" + b"junk" * 16)


def junk_exif_png(folder: str) -> bytes:
    """A real photo as a PNG with an eXIf chunk of junk."""
    png = photo_bytes("PNG", Image.open(first_photo(folder)).convert("RGB"))
    return png[:33] + chunk(b"eXIf", b"junk" * 16) + png[33:]


def corrupt_png_header() -> bytes:
    png = bytearray(photo_bytes("PNG", Image.new("RGB", (64, 64))))
    png[16:24] = struct.pack(">II", 0, 64)  # width 0, and its CRC left as it was
    return bytes(png)


CORRUPT_HEADERS = {  # an accepted format's signature, then a header its reader refuses
    "header.jpg": ("JPEG", b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x01" * 40),
    "header.png": ("PNG", corrupt_png_header()),
    "header.tif": ("TIFF", b"II*\x00" + struct.pack("<I", 2**31 - 1) + bytes(40)),
}
# bad file -> the words its error row holds
BAD = {**{name: "Decompressed data too large" for name in TEXT_BOMBS},
       **{name: f"corrupt {fmt} header" for name, (fmt, _) in CORRUPT_HEADERS.items()}}
# readable, though their EXIF is junk: classified, with a warning
JUNK_EXIF = {"exif.jpg": junk_exif_jpeg("dress"), "exif.png": junk_exif_png("hat")}


def crafted_folder(root: Path) -> Path:
    """Good photos (one named in Latin-1), every crafted file, and a FIFO named like a photo."""
    d = root / "photos"
    d.mkdir()
    for folder in GOOD:
        shutil.copy(first_photo(folder), d / f"{folder}.jpg")
    with open(os.fsencode(d) + b"/" + NON_UTF8, "wb") as f:
        f.write(first_photo("shorts").read_bytes())
    for name, data in {**TEXT_BOMBS, **{n: d for n, (_, d) in CORRUPT_HEADERS.items()}, **JUNK_EXIF}.items():
        (d / name).write_bytes(data)
    os.mkfifo(d / "pipe.jpg")
    return d


# ---- reading one file -----------------------------------------------------------------------

@pytest.mark.parametrize("name", TEXT_BOMBS)
def test_a_png_text_chunk_that_inflates_past_pillows_limit_is_that_images_error(name):
    data = TEXT_BOMBS[name]
    assert len(data) < 20_000, "a small file"
    with pytest.raises(ImageError, match="^corrupt PNG header \\(Decompressed data too large"):
        read_image(data, LIMITS)


@pytest.mark.parametrize("name", JUNK_EXIF)
def test_junk_exif_costs_only_the_orientation(name):
    photo = read_image(JUNK_EXIF[name], LIMITS)
    assert photo.rgb.shape[2] == 3 and photo.rgb.size
    assert photo.note.startswith("EXIF data unreadable (not a TIFF file") and "orientation not applied" in photo.note


@pytest.mark.parametrize("name", CORRUPT_HEADERS)
def test_a_corrupt_header_of_an_accepted_format_says_corrupt_not_unaccepted(name):
    fmt, data = CORRUPT_HEADERS[name]
    with pytest.raises(ImageError, match=f"^corrupt {fmt} header") as e:
        read_image(data, LIMITS)
    assert "not an accepted format" not in str(e.value)


def special_files(root: Path) -> dict[Path, str]:
    """A FIFO, a socket and a device, each named like a photo -> what its error row says."""
    os.mkfifo(root / "pipe.jpg")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "socket.jpg"))  # the socket file stays after it closes
    return {root / "pipe.jpg": "a named pipe (FIFO), not a regular file",
            root / "socket.jpg": "a socket, not a regular file",
            Path("/dev/zero"): "a character device, not a regular file"}


@pytest.mark.timeout(30)  # before the fix, opening the FIFO waited for a writer: forever
def test_only_regular_files_are_opened(tmp_path):
    for path, problem in special_files(tmp_path).items():
        with pytest.raises(ImageError, match=f"^{re.escape(problem)}$"):
            read_image(path, LIMITS)


# ---- predict: a folder of them beside good photos ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained Fashion-MNIST-shaped model: these tests are about the pipeline, not accuracy."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_model(from_yaml(ModelConfig, "model/cnn.yaml")).save(path)
    return path


@pytest.mark.timeout(120)  # before the fix, the FIFO hung the run
def test_predict_classifies_every_good_photo_beside_the_crafted_ones(tiny_model, tmp_path):
    folder = crafted_folder(tmp_path)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    out = subprocess.run([sys.executable, "-m", "fmnist.predict", f"model={tiny_model}", f"images=[{folder},{fifo}]",
                          f"output={tmp_path / 'preds.csv'}"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=110)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    listed = list(csv.DictReader((tmp_path / "preds.csv").open(encoding="utf-8")))
    good = [f"{g}.jpg" for g in GOOD] + [SHOWN, *JUNK_EXIF]
    assert sorted(Path(r["file"]).name for r in listed) == sorted([*good, *BAD, "pipe.jpg", "pipe.jpg"])
    rows = {Path(r["file"]).name: r for r in listed}
    for name in good:
        assert rows[name]["error"] == "" and 0 <= int(rows[name]["class_id"]) <= 9, name
    for name, words in BAD.items():
        assert words in rows[name]["error"] and rows[name]["class_id"] == "-1", name
    pipes = [r for r in listed if Path(r["file"]).name == "pipe.jpg"]
    assert [r["error"] for r in pipes] == ["a named pipe (FIFO), not a regular file"] * 2, "both FIFOs"
    assert len([line for line in out.stderr.splitlines() if "pipe.jpg: a named pipe" in line]) == 2
    table = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert sorted(Path(f).name for f in table) == sorted(good), "the table shows the Latin-1 name escaped"
    warned = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert sorted(Path(line.split(": ")[1]).name for line in warned) == sorted(JUNK_EXIF)


def test_a_file_name_that_is_not_utf8_is_written_escaped_and_classified(tiny_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/" + NON_UTF8, "wb") as f:
        f.write(first_photo("pants").read_bytes())
    for output in ("preds.json", "preds.csv"):
        assert predict(checked("predict", [f"model={tiny_model}", f"images={folder}",
                                              f"output={tmp_path / output}"])) == 0
    (row,) = pd.read_json(tmp_path / "preds.json").to_dict("records")
    assert row["file"] == f"{folder}/{SHOWN}" and row["error"] == "" and row["class_id"] >= 0
    (row,) = csv.DictReader((tmp_path / "preds.csv").open(encoding="utf-8"))
    assert row["file"] == f"{folder}/{SHOWN}" and row["error"] == ""


# ---- the served model, in this process ----------------------------------------------------------

def served_model(model_file: Path, **limits) -> PhotoClassifier:
    """A PhotoClassifier loaded as `mlflow models serve` loads it (`load_context`), with `limits`."""
    return loaded(model_file, serving_config(limits=from_yaml(Limits, "limits/default.yaml", **limits)))


def loaded(model_file: Path, config: dict) -> PhotoClassifier:
    clf = PhotoClassifier()
    clf.load_context(mlflow.pyfunc.PythonModelContext({KERAS_ARTIFACT: str(model_file)}, config))
    return clf


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_served_model_answers_a_batch_with_crafted_photos_row_by_row(tiny_model):
    crafted = [*TEXT_BOMBS.values(), *(d for _, d in CORRUPT_HEADERS.values())]
    good = [first_photo(g).read_bytes() for g in GOOD] + list(JUNK_EXIF.values())
    out = served_model(tiny_model).predict(None, pd.DataFrame({"image": [b64(d) for d in [*good, *crafted]]}))
    assert len(out) == len(good) + len(crafted)
    assert all(out["error"][: len(good)] == "") and all(out["class_id"][: len(good)] >= 0)
    assert all(out["class_id"][len(good):] == -1) and list(out["error"][len(good):]) == [
        *["corrupt PNG header (Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK)"] * len(TEXT_BOMBS),
        *[f"corrupt {fmt} header" for fmt, _ in CORRUPT_HEADERS.values()]]


def test_served_model_refuses_a_request_over_its_decoded_pixels_at_and_just_over(tiny_model):
    photos = [first_photo(g).read_bytes() for g in GOOD]
    work_size = serving_config()["photo"]["work_size"]
    cost = sum(reading.decoded_pixels(p, LIMITS, work_size) for p in photos)
    at_cap = served_model(tiny_model, max_request_pixels=cost)
    assert all(at_cap.predict(None, pd.DataFrame({"image": [b64(p) for p in photos]}))["error"] == "")
    over = served_model(tiny_model, max_request_pixels=cost - 1)
    with pytest.raises(MlflowException, match=f"^{cost} pixels to decode in one request, above "
                                              f"limits.max_request_pixels={cost - 1}; send fewer or smaller"):
        over.predict(None, pd.DataFrame({"image": [b64(p) for p in photos]}))


def test_a_large_jpeg_counts_the_pixels_it_is_decoded_at():
    """JPEG decodes at 1/2, 1/4 or 1/8 scale: a large photo costs what it is decoded at, not its size."""
    big = photo_bytes("JPEG", Image.open(first_photo("pants")).resize((3200, 4264)))
    assert reading.decoded_pixels(big, LIMITS, 160) == 400 * 533
    huge_png = photo_bytes("PNG", Image.new("L", (3200, 4264)))
    assert len(huge_png) < 100_000 and reading.decoded_pixels(huge_png, LIMITS, 160) == 3200 * 4264



def test_a_model_logged_before_max_request_pixels_still_serves(tiny_model):
    """Its logged limits lack the new cap: the installed fmnist's value fills in."""
    config = serving_config()
    del config["limits"]["max_request_pixels"]
    default = from_yaml(Limits, "limits/default.yaml").max_request_pixels
    assert loaded(tiny_model, config).limits.max_request_pixels == default
