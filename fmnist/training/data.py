"""Fashion-MNIST: find the four original files, verify them, parse IDX, split.

The Debian package ships *recompressed* gz files, so the checksums are taken over the
decompressed bytes: the same four hashes then hold for Debian, the Keras cache and the
official download.

`download` is the repair path: every file it keeps or moves into place has been verified, a
transfer goes to a temporary file beside the final one and is renamed only once it verifies, so
an interrupted download leaves nothing that a rerun would mistake for the data.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shlex
import shutil
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.errors import DataError
from fmnist.files import atomic

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# file name -> (SHA-256 of the decompressed bytes, number of items)
FILES = {
    "train-images-idx3-ubyte.gz": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 60000),
    "train-labels-idx1-ubyte.gz": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60000),
    "t10k-images-idx3-ubyte.gz": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 10000),
    "t10k-labels-idx1-ubyte.gz": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10000),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "fashion-mnist"
# Where `download` fetches from, in order: the Keras mirror (`keras.datasets.fashion_mnist`, HTTPS),
# then Zalando's official bucket, whose S3 *website* endpoint answers plain HTTP only (no HTTPS).
# $FMNIST_DATA_URL (base URLs separated by spaces) replaces the list, e.g. for a local mirror.
DEFAULT_URLS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
FETCH_TIMEOUT_S = 30  # per socket operation: a dead mirror fails over instead of hanging
HOW_TO_GET = (
    "install it with `apt-get install dataset-fashion-mnist`, "
    "or run `python -m fmnist.data --download`"
)


@dataclass(frozen=True)
class Splits:
    """Images are float32 in [0, 1], shape (N, 28, 28, 1); labels are int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def candidate_dirs(data_dir: str | None = None) -> list[Path]:
    """Where to look, in order: explicit dir, $FMNIST_DATA_DIR, Debian, Keras cache."""
    explicit = [data_dir or os.environ.get("FMNIST_DATA_DIR")]
    return [Path(d) for d in explicit if d] + [DEBIAN_DIR, KERAS_CACHE]


def find_data_dir(data_dir: str | None = None) -> Path:
    """The folder `load_arrays` reads (see `locate`), its files verified."""
    return locate(data_dir)[0]


def locate(data_dir: str | None = None) -> tuple[Path, tuple[np.ndarray, ...]]:
    """The folder and its four verified arrays. An explicit dir is the only one tried: silently
    falling back would train on data the user did not ask for. Otherwise the first of Debian's
    copy and the Keras cache whose files all verify: `--download` cannot repair a corrupt
    system copy (it fetches into the cache), so the copy it fetched must win over it."""
    if data_dir or os.environ.get("FMNIST_DATA_DIR"):
        chosen = candidate_dirs(data_dir)[0]
        missing = [f for f in FILES if not (chosen / f).is_file()]
        if missing:
            raise DataError(f"{chosen / missing[0]}: file not found; {how_to_repair(chosen)}")
        return chosen, read_all(chosen)
    failed: dict[Path, DataError] = {}
    for d in candidate_dirs():
        if not all((d / f).is_file() for f in FILES):
            continue
        try:
            arrays = read_all(d)
        except DataError as e:
            failed[d] = e
            continue
        for bad in failed:
            print(f"note: the copy in {bad} fails verification; using the verified one in {d}", file=sys.stderr)
        return d, arrays
    if failed:
        raise next(iter(failed.values()))
    raise DataError(
        f"Fashion-MNIST not found in {', '.join(map(str, candidate_dirs()))}; {HOW_TO_GET}"
    )


def read_all(d: Path) -> tuple[np.ndarray, ...]:
    return tuple(read_idx(d / name) for name in FILES)


def how_to_repair(d: Path) -> str:
    """The step that puts verified files where lookup will read them: `--download` fetches into
    $FMNIST_DATA_DIR or the Keras cache, never into the system copy."""
    if d == DEBIAN_DIR:
        return (f"reinstall it with `apt-get install --reinstall dataset-fashion-mnist`, or run "
                f"`python -m fmnist.data --download` (it fetches into {KERAS_CACHE}, which is then used instead)")
    if d == KERAS_CACHE and not os.environ.get("FMNIST_DATA_DIR"):
        return "run `python -m fmnist.data --download` to fetch the missing or bad files again"
    return (f"run `FMNIST_DATA_DIR={shlex.quote(str(d))} python -m fmnist.data --download` to fetch the missing or "
            "bad files there")


def decode_idx(data: bytes, name: str) -> np.ndarray:
    """Decompress, verify the SHA-256 and parse the bytes of the file called `name` (in FILES).
    Takes bytes, not a path, so a download can be checked under its temporary name.
    Raises ValueError saying what is wrong."""
    expected_sha, count = FILES[name]
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # bad header, cut short, corrupt deflate stream
        raise ValueError(f"not a readable gzip file ({e})") from None
    if hashlib.sha256(raw).hexdigest() != expected_sha:
        raise ValueError("SHA-256 of the decompressed bytes does not match")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims[0] != count or dims[1:] not in ((), (28, 28)):
        raise ValueError(f"unexpected shape {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    """Read, verify and parse one IDX file into a uint8 array; anything wrong is one DataError
    line saying what repairs it."""
    try:
        return decode_idx(path.read_bytes(), path.name)
    except OSError as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); {how_to_repair(path.parent)}") from None
    except ValueError as e:
        raise DataError(f"{path}: {e}; {how_to_repair(path.parent)}") from None


def load_arrays(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four original arrays as uint8: train images, train labels, test images, test labels."""
    return locate(data_dir)[1]  # type: ignore[return-value]


def stratified_indices(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced sample of `fraction` of `labels`, sorted."""
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picked.append(rng.choice(members, size=round(len(members) * fraction), replace=False))
    return np.sort(np.concatenate(picked))


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., None]


def load_splits(
    data_dir: str | None = None, val_fraction: float = 0.1, subset: int | None = None, seed: int = 0
) -> Splits:
    """Train / validation / test. The validation split is a seeded, stratified hold-out of
    the training set, so model selection never touches the test set. `subset` keeps a
    stratified sample of the training images (before the split) for quick runs."""
    x_train, y_train, x_test, y_test = load_arrays(data_dir)
    rng = np.random.default_rng(seed)
    if subset is not None and subset < len(y_train):
        keep = stratified_indices(y_train, subset / len(y_train), rng)
        x_train, y_train = x_train[keep], y_train[keep]
    val = stratified_indices(y_train, val_fraction, rng)
    train = np.setdiff1d(np.arange(len(y_train)), val)
    return Splits(
        to_float(x_train[train]), y_train[train].astype(np.int64),
        to_float(x_train[val]), y_train[val].astype(np.int64),
        to_float(x_test), y_test.astype(np.int64),
    )


def download_urls() -> list[str]:
    """Base URLs to fetch from: $FMNIST_DATA_URL (space-separated) if set, else DEFAULT_URLS."""
    return os.environ.get("FMNIST_DATA_URL", "").split() or list(DEFAULT_URLS)


def fetch_problem(error: Exception) -> str:
    """A short reason for a failed transfer (URLError's own text wraps it in `<urlopen error>`)."""
    if type(error) is urllib.error.URLError:
        return str(error.reason)
    return str(error) or type(error).__name__


def fetch_verified(url: str, final: Path) -> str | None:
    """Fetch `url` onto `final` if what arrives verifies (`files.atomic`: a transfer that is
    cut short or does not verify leaves `final` as it was). Returns what was wrong, or None
    when `final` now holds a verified copy."""
    try:
        with atomic(final) as out, urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out)
            out.flush()
            decode_idx(Path(out.name).read_bytes(), final.name)
    except (OSError, ValueError, http.client.HTTPException) as e:
        return fetch_problem(e)
    return None


def download_file(target: Path, name: str, urls: list[str]) -> str:
    """Keep `target/name` if it verifies, else fetch it: each URL in turn, then each once more
    (a transfer cut short usually succeeds when repeated). Returns the progress line."""
    final = target / name
    if final.is_file():
        try:
            read_idx(final)
            return f"{name}: present and verified"
        except DataError:
            pass  # a copy cut short by an earlier run: fetch it again
    problems = []
    for url in [base.rstrip("/") + "/" + name for base in urls] * 2:
        problem = fetch_verified(url, final)
        if problem is None:
            return f"{name}: fetched from {url}"
        problems.append(f"{url} ({problem})")
    raise DataError(
        f"{final}: no verified copy could be fetched: {', '.join(dict.fromkeys(problems))}; check the network, "
        "set FMNIST_DATA_URL to a mirror, or (re)install it with `apt-get install --reinstall dataset-fashion-mnist`"
    )


def download(target: Path | None = None, urls: list[str] | None = None) -> Path:
    """Make `target` hold the four verified files, fetching only those missing or failing
    verification. `target` defaults to $FMNIST_DATA_DIR (the folder the user chose, so training
    then finds the files there) or the Keras cache; `urls` to `download_urls()`."""
    target = target or Path(os.environ.get("FMNIST_DATA_DIR") or KERAS_CACHE)
    urls = urls or download_urls()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            print(download_file(target, name, urls), flush=True)
    except OSError as e:  # transfers report their own errors; this is the folder itself
        raise DataError(f"{target}: cannot write the data there ({e}); set FMNIST_DATA_DIR to a writable folder") from None
    return target
