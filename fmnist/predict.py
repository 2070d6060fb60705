"""`python -m fmnist.predict model=REF images=PATH [output=FILE] [sheet=FILE.png]`:
classify photos with a trained model.

Every image ends as one row: a prediction, or the reason it could not be read. A bad file
costs one line on stderr, never the run: exit 0 when at least one image was classified,
1 when none was (or no model), 2 for usage errors.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import mlflow
import numpy as np
from hydra import compose, initialize_config_dir
from PIL import Image, ImageDraw, ImageFont
from pydantic import Field, field_validator

from fmnist import cli
from fmnist.config import MlflowConfig, Strict, validate
from fmnist.preprocess import EXTENSIONS, ImageError, Limits, Mode, Photo, PhotoSettings, prepare, read_image

THUMB = 112  # contact sheet: photo and enlarged input are THUMB pixels square
LABEL_H = 30


class ModelRef(Strict):
    ref: str = "best"


class PredictSettings(Strict):
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    workers: int = Field(2, ge=1, le=64)
    sheet_columns: int = Field(6, ge=1, le=50)
    sheet_max: int = Field(300, ge=1)


class PredictConfig(Strict):
    model: ModelRef = ModelRef()
    images: Optional[list[str]] = None
    recursive: bool = False
    output: Optional[str] = None
    sheet: Optional[str] = None
    preprocess: Mode = "auto"
    predict: PredictSettings = PredictSettings()
    photo: PhotoSettings = PhotoSettings()
    limits: Limits = Limits()
    mlflow: MlflowConfig = MlflowConfig()

    @field_validator("images", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        if v is None or v == [] or v == "":
            raise ValueError("give the photos: images=FILE, a folder, a glob ('photos/*.jpg') or a list [a.jpg,b.png]")
        return [v] if isinstance(v, str) else v

    @field_validator("output")
    @classmethod
    def _table_format(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and Path(v).suffix.lower() not in (".csv", ".json"):
            raise ValueError("output file must end in .csv or .json")
        return v

    @field_validator("sheet")
    @classmethod
    def _png(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and Path(v).suffix.lower() != ".png":
            raise ValueError("sheet file must end in .png")
        return v


@dataclass
class Row:
    """One image's fate: a probability row, or the problem that stopped it."""

    file: str
    probs: Optional[np.ndarray] = None
    error: str = ""
    note: str = ""
    photo: Optional[Photo] = None
    input: Optional[np.ndarray] = None

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(self.probs)[::-1][:k]
        return [(int(i), float(self.probs[i])) for i in order]


# ---- which files ---------------------------------------------------------------------------

def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def expand(spec: str, recursive: bool) -> list[Row]:
    """One `images` entry -> rows to read, or one error row saying why it gave none."""
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file() and is_image_name(p))
        hint = "" if recursive else " (recursive=true looks in subfolders)"
        return [Row(str(p)) for p in found] or [Row(spec, error=f"folder has no images ({', '.join(EXTENSIONS)}){hint}")]
    if path.exists():
        return [Row(spec)]
    if glob.has_magic(spec):
        found = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        return [Row(p) for p in found] or [Row(spec, error="no file matches this pattern")]
    return [Row(spec, error="no such file or folder")]


def collect(specs: list[str], recursive: bool) -> list[Row]:
    """All entries expanded, each file once, in the order given."""
    rows, seen = [], set()
    for spec in specs:
        for row in expand(spec, recursive):
            if row.error or row.file not in seen:
                seen.add(row.file)
                rows.append(row)
    return rows


# ---- reading and classifying -------------------------------------------------------------------

def prepare_row(row: Row, cfg: PredictConfig, keep_photo: bool, steps: PhotoSettings | None = None) -> Row:
    """Read and preprocess one file with the photo steps `steps` (the model's own; default:
    the config's); failures become the row's error."""
    if row.error:
        return row
    steps = steps or cfg.photo
    try:
        photo = read_image(row.file, cfg.limits, steps.work_size)
        row.note = photo.note
        row.input = prepare(photo, cfg.preprocess, steps)
    except ImageError as e:
        row.error = str(e)
        return row
    row.photo = thumbnail(photo) if keep_photo else None
    return row


def thumbnail(photo: Photo) -> Photo:
    """Only the sheet needs the photo again, and only this small."""
    image = Image.fromarray(photo.rgb)
    image.thumbnail((THUMB, THUMB))
    return Photo(np.asarray(image))


def classify(rows: list[Row], model: Any) -> None:
    """Fill in each readable row's probabilities, all in one batch."""
    from fmnist.serving import probabilities

    ok = [r for r in rows if not r.error]
    if ok:
        for row, p in zip(ok, probabilities(model, np.stack([r.input for r in ok]))):
            row.probs = p


# ---- reporting --------------------------------------------------------------------------------

def top3_text(row: Row, classes: Sequence[str]) -> str:
    return "; ".join(f"{classes[i]} {p:.3f}" for i, p in row.top())


def print_table(rows: list[Row], min_confidence: float, classes: Sequence[str]) -> None:
    done = [r for r in rows if r.probs is not None]
    width, name_width = max([len(r.file) for r in done] + [4]), max(map(len, classes))
    print(f"{'file':<{width}}  {'class':<{name_width}}  {'conf':>5}  top 3")
    for r in done:
        (cid, conf), = r.top(1)
        mark = "  low_confidence" if conf < min_confidence else ""
        print(f"{r.file:<{width}}  {classes[cid]:<{name_width}}  {conf:5.3f}  {top3_text(r, classes)}{mark}")


def record(row: Row, json_style: bool, classes: Sequence[str]) -> dict[str, Any]:
    """The output file's columns: file, class_id, class_name, confidence, top3, error."""
    if row.probs is None:
        return {"file": row.file, "class_id": None, "class_name": None, "confidence": None,
                "top3": None if json_style else "", "error": row.error}
    (cid, conf), = row.top(1)
    top3 = [{"class_id": i, "class_name": classes[i], "confidence": round(p, 6)} for i, p in row.top()]
    return {"file": row.file, "class_id": cid, "class_name": classes[cid], "confidence": round(conf, 6),
            "top3": top3 if json_style else top3_text(row, classes), "error": ""}


def write_output(rows: list[Row], path: Path, classes: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([record(r, True, classes) for r in rows], indent=2) + "\n")
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["file", "class_id", "class_name", "confidence", "top3", "error"])
        writer.writeheader()
        writer.writerows(record(r, False, classes) for r in rows)


def sheet_size(n: int, columns: int) -> tuple[int, int]:
    """Width and height in pixels of a sheet of `n` photos."""
    cols = min(n, columns)
    return cols * 2 * THUMB, math.ceil(n / cols) * (THUMB + LABEL_H)


def tile(row: Row, min_confidence: float, font: ImageFont.ImageFont, classes: Sequence[str]) -> Image.Image:
    """Photo | the model's input enlarged, and below them the file, class and confidence."""
    out = Image.new("RGB", (2 * THUMB, THUMB + LABEL_H), "white")
    photo = Image.fromarray(row.photo.rgb)
    out.paste(photo, ((THUMB - photo.width) // 2, (THUMB - photo.height) // 2))
    seen = Image.fromarray((row.input * 255).round().astype(np.uint8)).resize((THUMB, THUMB), Image.NEAREST)
    out.paste(seen.convert("RGB"), (THUMB, 0))
    (cid, conf), = row.top(1)
    low = conf < min_confidence
    draw = ImageDraw.Draw(out)
    name = Path(row.file).name
    draw.text((3, THUMB + 1), name if len(name) <= 32 else name[:31] + "…", fill="gray", font=font)
    draw.text((3, THUMB + 15), f"{classes[cid]} {conf:.2f}" + (" (low)" if low else ""),
              fill="firebrick" if low else "black", font=font)
    return out


def write_sheet(rows: list[Row], path: Path, cfg: PredictSettings, classes: Sequence[str]) -> int:
    """A PNG grid of the classified photos; returns how many it shows."""
    done = [r for r in rows if r.probs is not None][: cfg.sheet_max]
    sheet = Image.new("RGB", sheet_size(len(done), cfg.sheet_columns), "white")
    font = ImageFont.load_default(12)
    cols = min(len(done), cfg.sheet_columns)
    for k, row in enumerate(done):
        sheet.paste(tile(row, cfg.min_confidence, font, classes), ((k % cols) * 2 * THUMB, (k // cols) * (THUMB + LABEL_H)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return len(done)


def summary(rows: list[Row], cfg: PredictConfig) -> str:
    done = [r for r in rows if r.probs is not None]
    low = sum(r.top(1)[0][1] < cfg.predict.min_confidence for r in done)
    return (f"{len(done)} of {len(rows)} image(s) classified, {len(rows) - len(done)} error(s), "
            f"{low} low_confidence (< {cfg.predict.min_confidence:g}); model {cfg.model.ref}")


# ---- the command ---------------------------------------------------------------------------

def predict(cfg: PredictConfig) -> int:
    from fmnist.serving import NoModelError, load_classifier  # TensorFlow starts only when there is work

    if cfg.mlflow.tracking_uri:
        mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    try:  # first: no point reading photos without a model
        clf = load_classifier(cfg.model.ref, cfg.mlflow.registered_model)
    except NoModelError as e:
        print(f"error: model: {e}", file=sys.stderr)
        return cli.EXIT_FAILED
    rows = collect(cfg.images, cfg.recursive)
    with ThreadPoolExecutor(cfg.predict.workers) as pool:
        rows = list(pool.map(lambda r: prepare_row(r, cfg, cfg.sheet is not None, clf.photo), rows))
    for r in rows:
        if r.error or r.note:
            print(f"{'error' if r.error else 'warning'}: {r.file}: {r.error or r.note}", file=sys.stderr)
    classify(rows, clf.model)
    print_table(rows, cfg.predict.min_confidence, clf.classes)
    if cfg.output:
        write_output(rows, Path(cfg.output), clf.classes)
    classified = sum(r.probs is not None for r in rows)
    if cfg.sheet and classified:
        shown = write_sheet(rows, Path(cfg.sheet), cfg.predict, clf.classes)
        if shown < classified:
            print(f"note: {cfg.sheet} shows the first {shown} of {classified} photos (predict.sheet_max)", file=sys.stderr)
    print(summary(rows, cfg), file=sys.stderr)
    return 0 if classified else cli.EXIT_FAILED


def compose_config(overrides: list[str]) -> PredictConfig:
    """conf/predict.yaml with command-line style overrides, checked: what the command would
    run with (for the benches and tests, which call the steps directly)."""
    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        return validate(PredictConfig, compose("predict", overrides=hydra_args(overrides)))


def hydra_args(argv: list[str]) -> list[str]:
    """`model=REF` -> `model.ref=REF`: Hydra would read `model=` as a choice from conf/model/
    (the training architectures), not as the model to predict with."""
    return [f"model.ref={a[len('model='):]}" if a.startswith("model=") else a for a in argv]


_main = cli.entry("predict", PredictConfig, predict)


def main() -> None:
    sys.argv[1:] = hydra_args(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
