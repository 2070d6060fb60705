"""The contact sheet `fmnist.predict sheet=FILE.png` draws: each classified photo beside the
input the model saw, with its class and confidence, so a wrong answer shows why at a glance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from fmnist.config import PredictSettings
from fmnist.images.reading import Photo

THUMB = 112  # photo and enlarged input are THUMB pixels square
LABEL_H = 30


def thumbnail(photo: Photo) -> Photo:
    """Only the sheet needs the photo again, and only this small: kept per row while predicting."""
    image = Image.fromarray(photo.rgb)
    image.thumbnail((THUMB, THUMB))
    return Photo(np.asarray(image))


def sheet_size(n: int, columns: int) -> tuple[int, int]:
    """Width and height in pixels of a sheet of `n` photos."""
    cols = min(n, columns)
    return cols * 2 * THUMB, math.ceil(n / cols) * (THUMB + LABEL_H)


def tile(photo: Photo, seen: np.ndarray, result: Any, font: ImageFont.ImageFont) -> Image.Image:
    """Photo | the model's input enlarged, and below them the file, class and confidence
    (from `result`, the photo's row of the predictions)."""
    out = Image.new("RGB", (2 * THUMB, THUMB + LABEL_H), "white")
    picture = Image.fromarray(photo.rgb)
    out.paste(picture, ((THUMB - picture.width) // 2, (THUMB - picture.height) // 2))
    enlarged = Image.fromarray((seen * 255).round().astype(np.uint8)).resize((THUMB, THUMB), Image.NEAREST)
    out.paste(enlarged.convert("RGB"), (THUMB, 0))
    low = result.low_confidence
    draw = ImageDraw.Draw(out)
    name = Path(result.file).name
    draw.text((3, THUMB + 1), name if len(name) <= 32 else name[:31] + "…", fill="gray", font=font)
    draw.text((3, THUMB + 15), f"{result.class_name} {result.confidence:.2f}" + (" (low)" if low else ""),
              fill="firebrick" if low else "black", font=font)
    return out


def write_sheet(pictures: list[tuple[Photo | None, np.ndarray | None]], frame: pd.DataFrame, path: Path,
                cfg: PredictSettings) -> int:
    """A PNG grid of the classified photos (`pictures`: each row's photo and model input, in
    the order of `frame`, the predictions); returns how many it shows."""
    done = [(*pic, r) for pic, r in zip(pictures, frame.itertuples(), strict=True) if r.class_id >= 0]
    done = done[: cfg.sheet_max]
    sheet = Image.new("RGB", sheet_size(len(done), cfg.sheet_columns), "white")
    font = ImageFont.load_default(12)
    cols = min(len(done), cfg.sheet_columns)
    for k, (photo, seen, result) in enumerate(done):
        sheet.paste(tile(photo, seen, result, font), ((k % cols) * 2 * THUMB, (k // cols) * (THUMB + LABEL_H)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return len(done)
