"""A user's labelled photos: one subfolder per class, split and prepared once.

Fine-tuning reads the same folder many times (every trial of a sweep), and the photo
steps (GrabCut above all) cost far more than a training epoch on 28x28 inputs, so each
photo's model input is cached on disk under the SHA-256 of the file's bytes and of the
photo settings: a second run reads it back, a changed setting or a changed photo prepares
it again. Unreadable photos are reported once each and left out; the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.config import Limits, PhotoSettings
from fmnist.errors import DataError, ImageError
from fmnist.files import atomic
from fmnist.images.preprocess import prepare
from fmnist.images.reading import EXTENSIONS, read_image

# Bumped when the photo steps' code changes what they make, so old cache entries are not reused.
STEPS_VERSION = 1


class PhotoSetError(DataError):
    """A photo folder that cannot be trained on; the message names it and what is wrong."""


@dataclass(frozen=True)
class PhotoSet:
    """Files with their class index; `classes` are the subfolder names, sorted."""

    files: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)


def scan(root: str | Path, classes: tuple[str, ...] | None = None) -> PhotoSet:
    """The class folders under `root` and their images. An empty class folder is skipped
    with a warning; fewer than two classes left is an error. `classes`: the class list to
    label by (a validation folder must use the training folder's), its folders may be missing."""
    root = Path(root)
    if not root.is_dir():
        raise PhotoSetError(f"{root}: no such folder (expected one subfolder of photos per class)")
    found = {d.name: images_in(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    for name in [n for n, files in found.items() if not files]:
        warn(f"{root / name}: no images ({', '.join(EXTENSIONS)}); class skipped")
    found = {n: files for n, files in found.items() if files}
    if classes is None:
        classes = tuple(found)
        if len(classes) < 2:
            raise PhotoSetError(f"{root}: needs at least 2 class folders with images, found "
                                f"{len(classes)}{' (' + classes[0] + ')' if classes else ''}")
    for name in sorted(set(found) - set(classes)):
        warn(f"{root / name}: not a class of the training photos ({', '.join(classes)}); skipped")
    files = [(f, classes.index(n)) for n, fs in found.items() if n in classes for f in fs]
    return PhotoSet(tuple(f for f, _ in files), np.array([y for _, y in files], np.int64), classes)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: `fraction` of each class, at least one photo of each class
    with two or more, seeded. A class with one photo trains only (with a warning from the caller)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, round(fraction * len(idx))))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, np.int64)), np.sort(np.array(val, np.int64))


def settings_key(steps: PhotoSettings, limits: Limits) -> str:
    raw = json.dumps({"steps": steps.model_dump(), "limits": limits.model_dump(), "v": STEPS_VERSION}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class PhotoCache:
    """Model inputs on disk, one .npy per photo under `root/<settings>/<content>.npy`,
    stored as float16 (half the space; the change is below a 1/1000 of a tone)."""

    def __init__(self, root: str | Path, steps: PhotoSettings, limits: Limits) -> None:
        self.dir = Path(root).expanduser() / settings_key(steps, limits)
        self.steps, self.limits = steps, limits
        self.hits = 0

    def load(self, path: Path) -> np.ndarray:
        """The photo's input, prepared now unless cached; ImageError if it cannot be read."""
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"cannot read ({e.strerror or e})") from None
        entry = self.dir / f"{hashlib.sha256(data).hexdigest()}.npy"
        if entry.is_file():
            self.hits += 1
            return np.load(entry).astype(np.float32)
        x = prepare(read_image(data, self.limits, self.steps.work_size), "auto", self.steps)
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic(entry) as f:  # a killed run leaves no half-written entry
            np.save(f, x.astype(np.float16))
        return x


def prepare_all(files: tuple[Path, ...], cache: PhotoCache, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, kept): the inputs of the readable photos, (N, H, W, C), and their indices
    into `files`. Each unreadable photo gets one warning line."""
    def one(path: Path) -> np.ndarray | None:
        try:
            return cache.load(path)
        except ImageError as e:
            warn(f"{path}: {e}; skipped")
            return None

    with ThreadPoolExecutor(workers) as pool:
        inputs = list(pool.map(one, files))
    kept = np.array([i for i, x in enumerate(inputs) if x is not None], np.int64)
    stacked = np.stack([inputs[i] for i in kept]) if len(kept) else np.zeros((0, *cache.steps.shape), np.float32)
    return stacked.reshape(len(kept), *cache.steps.shape), kept


@dataclass(frozen=True)
class PhotoArrays:
    """One photo setting's inputs: the training photos and the validation photos that could be read."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    val_files: tuple[Path, ...]


class PhotoData:
    """The training and validation photos, prepared per photo setting on first use (a sweep
    whose trials try several inputs prepares each once, the cache keeps them across runs)."""

    def __init__(self, train: PhotoSet, val: PhotoSet, cache_root: str, limits: Limits, workers: int) -> None:
        self.train, self.val, self.classes = train, val, train.classes
        self.cache_root, self.limits, self.workers = cache_root, limits, workers
        self._arrays: dict[str, PhotoArrays] = {}

    def arrays(self, steps: PhotoSettings) -> PhotoArrays:
        key = settings_key(steps, self.limits)
        if key not in self._arrays:
            x_train, kept_train = prepare_all(self.train.files, self.cache(steps), self.workers)
            x_val, y_val, val_files = self.validation(steps)
            if not len(kept_train):
                raise PhotoSetError("none of the training photos could be read")
            self._arrays[key] = PhotoArrays(x_train, self.train.labels[kept_train], x_val, y_val, val_files)
        return self._arrays[key]

    def validation(self, steps: PhotoSettings) -> tuple[np.ndarray, np.ndarray, tuple[Path, ...]]:
        """The validation photos alone (to measure another model on the same photos)."""
        x_val, kept = prepare_all(self.val.files, self.cache(steps), self.workers)
        if not len(kept):
            raise PhotoSetError("none of the validation photos could be read")
        return x_val, self.val.labels[kept], tuple(self.val.files[i] for i in kept)

    def cache(self, steps: PhotoSettings) -> PhotoCache:
        return PhotoCache(self.cache_root, steps, self.limits)


def subset(s: PhotoSet, idx: np.ndarray) -> PhotoSet:
    return PhotoSet(tuple(s.files[i] for i in idx), s.labels[idx], s.classes)


def load_photo_data(photos: str, validation: str | None, val_fraction: float, seed: int, cache_root: str,
                    limits: Limits, workers: int) -> PhotoData:
    """The classes and files of `photos`, and the photos to select on: the `validation`
    folder's, or a stratified seeded share of each class of `photos`."""
    every = scan(photos)
    if validation:
        val = scan(validation, every.classes)
        if not val.files:
            raise PhotoSetError(f"{validation}: no images in folders named as the classes of {photos} "
                                f"({', '.join(every.classes)})")
        return PhotoData(every, val, cache_root, limits, workers)
    train_idx, val_idx = stratified_split(every.labels, val_fraction, seed)
    for c in np.flatnonzero(np.bincount(every.labels, minlength=len(every.classes)) == 1):
        warn(f"{Path(photos) / every.classes[c]}: only 1 photo; it trains, none of this class is validated")
    return PhotoData(subset(every, train_idx), subset(every, val_idx), cache_root, limits, workers)
