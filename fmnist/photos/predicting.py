"""`python -m fmnist.predict model=REF images=PATH [output=FILE] [sheet=FILE.png]`:
classify photos with a trained model.

Every image ends as one row: a prediction, or the reason it could not be read. A bad file
costs one line on stderr, never the run: exit 0 when at least one image was classified,
1 when none was (or no model), 2 for usage errors.

The rows are one DataFrame: the served model's answer (`serving.answer`: class_id,
class_name, confidence, probabilities, error) with `file` first and the `top3` and
`low_confidence` the table shows after it. The table, the CSV/JSON file (written by pandas)
and the contact sheet all read it, so the files and the endpoint share one schema.

A file name need not be UTF-8 (Linux names are bytes; Python carries the bytes that do not
decode as lone surrogates, which no UTF-8 writer accepts). The table, the files and the
stderr lines show such a byte backslash-escaped, as Python writes it: `caf\xe9.jpg` for the
bytes b'caf\xe9.jpg'. The files stay valid UTF-8 (JSON must be), the name stays recognisable,
and the photo is read by its real name and classified like any other.
"""

from __future__ import annotations

import glob
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import mlflow
import numpy as np
import pandas as pd

from fmnist.config import PhotoSettings, PredictConfig
from fmnist.errors import EXIT_FAILED, ImageError
from fmnist.files import atomic
from fmnist.images.preprocess import prepare
from fmnist.images.reading import EXTENSIONS, Photo, image_errors, read_image, reason
from fmnist.reports.sheet import thumbnail, write_sheet
from fmnist.serving.classifier import answer, probabilities
from fmnist.serving.loading import load_classifier


@dataclass
class Row:
    """One image before the model: the input it became, or the problem that stopped it (the
    prediction is its row in `results`)."""

    file: str
    error: str = ""
    note: str = ""
    photo: Optional[Photo] = None
    input: Optional[np.ndarray] = None


# ---- which files ---------------------------------------------------------------------------

def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def expand(spec: str, recursive: bool) -> list[Row]:
    """One `images` entry -> rows to read, or one error row saying why it gave none."""
    path = Path(spec)
    if path.is_dir():
        try:  # not only regular files: a FIFO or a device named like an image gets its row saying so
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if is_image_name(p) and not p.is_dir())
        except OSError as e:  # a folder we may not list, or one that went away
            return [Row(spec, error=f"cannot list this folder ({e.strerror or reason(e)})")]
        hint = "" if recursive else " (recursive=true looks in subfolders)"
        none = f"folder has no images ({', '.join(EXTENSIONS)}){hint}"
        return [Row(str(p)) for p in found] or [Row(spec, error=none)]
    if path.exists():
        return [Row(spec)]
    if glob.has_magic(spec):
        found = sorted(str(p) for p in glob_files(spec))
        return [Row(p) for p in found] or [Row(spec, error="no file matches this pattern")]
    return [Row(spec, error="no such file or folder")]


def glob_files(spec: str) -> list[Path]:
    """The files a pattern matches, as `glob` finds them (hidden names only when the pattern
    names them), except that `**` does not descend into symlinked folders, pathlib's rule:
    `glob.glob` follows them, so a link to a parent folder repeats every photo below it, and
    two such links make the walk exponential (a hang)."""
    parts = [part if part == "**" else re.sub(r"\*+", "*", part) for part in Path(spec).parts]  # `**.jpg`: `*.jpg`
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed])
    pattern = Path(*parts[fixed:], *(["*"] if parts[-1] == "**" else []))  # glob's `dir/**`: all below
    hidden_ok = any(part.startswith(".") for part in pattern.parts)
    return [p for p in root.glob(str(pattern))
            if not p.is_dir() and (hidden_ok or not any(q.startswith(".") for q in p.relative_to(root).parts))]


def collect(specs: list[str], recursive: bool) -> list[Row]:
    """All entries expanded, each file once (by its real path: a symlink and its target, or
    two spellings of one path, are one photo), in the order given."""
    rows, seen = [], set()
    for spec in specs:
        for row in expand(spec, recursive):
            key = row.file if row.error else Path(row.file).resolve()
            if row.error or key not in seen:
                seen.add(key)
                rows.append(row)
    return rows


# ---- reading and classifying -------------------------------------------------------------------

def prepare_row(row: Row, cfg: PredictConfig, keep_photo: bool, steps: PhotoSettings | None = None) -> Row:
    """Read and preprocess one file with the photo steps `steps` (the model's own; default:
    the config's); a failure of any kind becomes the row's error, never the run's end."""
    if row.error:
        return row
    steps = steps or cfg.photo
    try:
        with image_errors():
            photo = read_image(row.file, cfg.limits, steps.work_size)
            row.input = prepare(photo, cfg.preprocess, steps)
            row.photo = thumbnail(photo) if keep_photo else None
        row.note = photo.note
    except ImageError as e:
        row.error = str(e)
    return row


def classify(rows: list[Row], model: Any) -> np.ndarray:
    """One probability row per row, the readable ones in one batch; a failed image's row stays
    zeros, which `serving.answer` ignores for a row with an error."""
    ok = [i for i, r in enumerate(rows) if not r.error]
    probs = np.zeros((len(rows), model.output_shape[-1]), np.float32)
    if ok:
        probs[ok] = probabilities(model, np.stack([rows[i].input for i in ok]))
    return probs


# ---- reporting --------------------------------------------------------------------------------

def results(rows: list[Row], probs: np.ndarray, classes: Sequence[str], min_confidence: float) -> pd.DataFrame:
    """The served model's answer for these images (one schema for the endpoint and the files),
    with `file` first and, after it, what the table shows: `top3` and `low_confidence`."""
    frame = answer(probs, [printable(r.error) for r in rows], classes)
    frame.insert(0, "file", [printable(r.file) for r in rows])
    frame["top3"] = [top3_text(p, classes) for p in frame["probabilities"]]
    frame["low_confidence"] = (frame["class_id"] >= 0) & (frame["confidence"] < min_confidence)
    # Six decimals: about all a float32 probability holds, and a file stays readable.
    frame["confidence"] = [round(c, 6) for c in frame["confidence"]]  # as in probabilities, to the last digit
    frame["probabilities"] = [[round(v, 6) for v in p] for p in frame["probabilities"]]
    return frame


def printable(text: str) -> str:
    """`text` with the bytes of a non-UTF-8 file name backslash-escaped (see the module's
    docstring), so that every writer (stdout, CSV, JSON) takes it."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name gives (typed into a list of images)
        return text.encode("utf-8", "backslashreplace").decode()
    return raw.decode("utf-8", "backslashreplace")


def top3_text(probs: Sequence[float], classes: Sequence[str]) -> str:
    """'Trouser 0.986; Coat 0.014; Dress 0.000': the runners-up in one cell a person can read
    (`probabilities` has them all); empty for an image that was not classified. A stable sort,
    so that on a tie the first is the class `answer` picked."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:3]
    return "; ".join(f"{classes[i]} {probs[i]:.3f}" for i in order)


def print_table(frame: pd.DataFrame, classes: Sequence[str]) -> None:
    """The classified rows on stdout; the failed ones already had their line on stderr."""
    done = frame[frame["class_id"] >= 0]
    width, name_width = max([*map(len, done["file"]), 4]), max(map(len, classes))
    print(f"{'file':<{width}}  {'class':<{name_width}}  {'conf':>5}  top 3")
    for r in done.itertuples():
        mark = "  low_confidence" if r.low_confidence else ""
        print(f"{r.file:<{width}}  {r.class_name:<{name_width}}  {r.confidence:5.3f}  {r.top3}{mark}")


def write_output(frame: pd.DataFrame, path: Path) -> None:
    """The results as they are, by pandas: the same columns in CSV and JSON (in the CSV,
    `probabilities` is a JSON list in one cell). Whole or not at all: a previous file stays
    until the new one is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        text = frame.to_json(orient="records", indent=2) + "\n"
    else:
        text = frame.to_csv(index=False)
    with atomic(path) as f:
        f.write(text.encode())


def summary(frame: pd.DataFrame, cfg: PredictConfig) -> str:
    """The run in one stderr line, so the table on stdout stays a table."""
    done, low = int((frame["class_id"] >= 0).sum()), int(frame["low_confidence"].sum())
    return (f"{done} of {len(frame)} image(s) classified, {len(frame) - done} error(s), "
            f"{low} low_confidence (< {cfg.predict.min_confidence:g}); model {cfg.model.ref}")


# ---- the command ---------------------------------------------------------------------------

def predict(cfg: PredictConfig) -> int:
    if cfg.mlflow.tracking_uri:
        mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    clf = load_classifier(cfg.model.ref, cfg.mlflow.registered_model)  # first: no photo is read without a model
    steps = clf.photo or cfg.photo
    clf.check(steps, cfg.model.ref)
    # Pillow warns of EXIF it can only partly parse, in a line that names no file; the pixels are read.
    warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
    rows = collect(cfg.images, cfg.recursive)
    with ThreadPoolExecutor(cfg.predict.workers) as pool:
        rows = list(pool.map(lambda r: prepare_row(r, cfg, cfg.sheet is not None, steps), rows))
    for r in rows:
        if r.error or r.note:
            print(f"{'error' if r.error else 'warning'}: {printable(r.file)}: {printable(r.error or r.note)}",
                  file=sys.stderr)
    frame = results(rows, classify(rows, clf.model), clf.classes, cfg.predict.min_confidence)
    print_table(frame, clf.classes)
    if cfg.output:
        write_output(frame, Path(cfg.output))
    classified = int((frame["class_id"] >= 0).sum())
    if cfg.sheet and classified:
        shown = write_sheet([(r.photo, r.input) for r in rows], frame, Path(cfg.sheet), cfg.predict)
        if shown < classified:
            print(f"note: {cfg.sheet} shows the first {shown} of {classified} photos (predict.sheet_max)",
                  file=sys.stderr)
    print(summary(frame, cfg), file=sys.stderr)
    return 0 if classified else EXIT_FAILED
