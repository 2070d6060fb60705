"""Photo -> 28x28 input: the invariants on real photos, every reader path, every bad file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from fmnist.config import Limits, PhotoSettings, from_yaml
from fmnist.errors import ImageError
from fmnist.images.preprocess import is_fmnist_like, prepare
from fmnist.images.reading import read_image
from fmnist.training.data import load_arrays
from tests.conftest import PHOTOS

FOLDERS = ("t-shirt", "pants", "dress", "outwear", "shirt", "longsleeve", "shoes", "hat")

PHOTO = from_yaml(PhotoSettings, "photo/default.yaml")
LIMITS = from_yaml(Limits, "limits/default.yaml")


def first_photo(folder: str) -> Path:
    return sorted((PHOTOS / folder).glob("*.jpg"))[0]


def prepared(path: Path | bytes) -> np.ndarray:
    return prepare(read_image(path, LIMITS), "photo", PHOTO)


@pytest.mark.parametrize("folder", FOLDERS)
def test_real_photo_becomes_a_fashion_mnist_like_input(folder):
    x = prepared(first_photo(folder))
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    ys, xs = np.nonzero(x > 0.02)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    assert max(bottom - top, right - left) >= 25, "the garment fills the frame along its longest side"
    assert abs((top + bottom) / 2 - 13.5) <= 1 and abs((left + right) / 2 - 13.5) <= 1, "centred"
    corners = np.concatenate([x[:3, :3], x[:3, -3:], x[-3:, :3], x[-3:, -3:]]).ravel()
    assert np.median(corners) < 0.05, "background black"
    assert x[x > 0.02].mean() > 0.25, "garment bright"


def test_colour_and_plain_inputs_for_photo_models():
    """A photo model may take the garment in colour on black, or the whole photo, at its own size."""
    photo = read_image(first_photo("pants"), LIMITS)
    colour = prepare(photo, "photo", PHOTO.model_copy(update={"input": "colour", "size": 48}))
    plain = prepare(photo, "photo", PHOTO.model_copy(update={"input": "plain", "size": 48}))
    assert colour.shape == plain.shape == (48, 48, 3) and colour.dtype == plain.dtype == np.float32
    lit = colour.max(axis=2) > 0.02
    ys, xs = np.nonzero(lit)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) >= 45, "the garment fills the frame"
    assert not lit[:2, :2].any() and not lit[-2:, -2:].any(), "background black"
    assert plain[:, 12:36].min(axis=2).mean() > colour[:, 12:36].min(axis=2).mean(), "the photo's background kept"


def photo_bytes(fmt: str, image: Image.Image | None = None, **kw) -> bytes:
    image = image or Image.open(first_photo("t-shirt"))
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "TIFF"])
def test_each_format_gives_the_same_input_as_the_jpeg(fmt):
    rgb = Image.open(first_photo("t-shirt")).convert("RGB")
    lossless = prepared(photo_bytes(fmt, rgb, **({"lossless": True} if fmt == "WEBP" else {})))
    assert np.abs(lossless - prepared(photo_bytes("PNG", rgb))).mean() < 0.02


def test_exif_orientation_is_honoured():
    rgb = Image.open(first_photo("pants")).convert("RGB")  # portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, to be shown rotated 90 degrees clockwise
    stored = rgb.transpose(Image.Transpose.ROTATE_90)
    photo = read_image(photo_bytes("JPEG", stored, exif=exif.tobytes()), LIMITS)
    assert photo.rgb.shape[0] > photo.rgb.shape[1], "read upright, as the camera meant"


def test_gray_16bit_and_rgba_cut_out():
    sixteen = np.zeros((64, 48), np.uint16)
    sixteen[8:56, 12:36] = 50000
    photo = read_image(photo_bytes("PNG", Image.fromarray(sixteen)), LIMITS)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (64, 48, 3) and photo.rgb.max() == 50000 // 257

    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[..., :3] = 200  # the garment's colour is the background's: only alpha tells them apart
    rgba[10:50, 20:40, 3] = 255
    x = prepared(photo_bytes("PNG", Image.fromarray(rgba)))
    ys, xs = np.nonzero(x)
    assert ys.max() - ys.min() >= 26 and 12 <= xs.max() - xs.min() <= 16, "the alpha cut-out, framed"


def test_fashion_mnist_images_skip_the_photo_steps():
    x_train = load_arrays()[0][:5]
    for img in x_train:
        photo = read_image(photo_bytes("PNG", Image.fromarray(img)), LIMITS)
        assert is_fmnist_like(photo)
        assert np.allclose(prepare(photo, "auto", PHOTO), img / 255.0)


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height: the reader must refuse it from the header."""
    png = bytearray(photo_bytes("PNG", Image.new("L", (8, 8))))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


@pytest.mark.parametrize("data, problem", [
    (b"", "empty file"),
    (b"hello, I am text\n", "not an image"),
    ("truncated", "truncated"),
    (photo_bytes("PNG", Image.new("RGB", (1, 1))), "1x1"),
    (huge_png_header(20000, 20000), "too large"),
])
def test_bad_bytes_raise_one_clear_problem(data, problem):
    if data == "truncated":
        whole = first_photo("dress").read_bytes()
        data = whole[: len(whole) // 2]
    with pytest.raises(ImageError, match=problem):
        read_image(data, LIMITS)


def test_cmyk_is_converted_with_a_note():
    photo = read_image(photo_bytes("JPEG", Image.open(first_photo("shirt")).convert("CMYK")), LIMITS)
    assert photo.rgb.shape[2] == 3 and "CMYK" in photo.note


def test_same_photo_same_input_whatever_ran_before():
    """GrabCut seeds its colour models at random; a prediction must not depend on the order."""
    first = prepared(first_photo("dress"))
    prepared(first_photo("shoes"))
    assert np.array_equal(prepared(first_photo("dress")), first)


@pytest.mark.parametrize("fmt", ["GIF", "PCX", "ICO", "EPS"])
def test_formats_off_the_allow_list_are_refused_by_name(fmt, monkeypatch):
    """Pillow knows them all; only JPEG, PNG, BMP, WebP and TIFF decoders may run (an EPS
    would reach Ghostscript where it is installed)."""
    ran = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: ran.append(a) or Image.new("RGB", (64, 64)))
    with pytest.raises(ImageError, match=f"^{fmt} is not an accepted format \\(JPEG, PNG, BMP, WebP, TIFF\\)$"):
        read_image(photo_bytes(fmt, Image.open(first_photo("hat")).convert("RGB")), LIMITS)
    assert not ran, "Ghostscript was called"


def test_bytes_per_image_at_and_just_over_the_cap(tmp_path):
    data = first_photo("shoes").read_bytes()
    at_cap = from_yaml(Limits, "limits/default.yaml", max_bytes=len(data))
    below = from_yaml(Limits, "limits/default.yaml", max_bytes=len(data) - 1)
    (tmp_path / "shoes.jpg").write_bytes(data)
    for source in (data, tmp_path / "shoes.jpg"):
        assert read_image(source, at_cap).rgb.size
        with pytest.raises(ImageError, match=f"^file is {len(data)} bytes, above limits.max_bytes={len(data) - 1}$"):
            read_image(source, below)
