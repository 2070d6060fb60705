"""Milliseconds per photo for preprocessing plus prediction, as `fmnist.predict` does them.

    python bench/predict_speed.py MODEL_REF PHOTOS_DIR [--photos 300] [key=value ...]

Takes up to --photos images under PHOTOS_DIR (recursively, cycling if there are fewer),
loads the model once (start-up is reported apart: it is paid once per command, not per
photo), then times reading + preprocessing with the configured worker threads and the
batched prediction. Extra arguments override conf/predict.yaml (e.g. predict.workers=1).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fmnist.config.loading import checked
from fmnist.photos.predicting import Row, classify, collect, prepare_row
from fmnist.serving.loading import load_keras


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="best | models:/NAME/VERSION | models:/NAME@ALIAS | runs:/ID/model | FILE.keras")
    parser.add_argument("photos", type=Path)
    parser.add_argument("--photos", dest="count", type=int, default=300, help="how many photos to time")
    parser.add_argument("overrides", nargs="*", help="conf/predict.yaml overrides")
    args = parser.parse_args()
    cfg = checked("predict", [*args.overrides, f"images={args.photos}"])
    files = [r.file for r in collect(cfg.images, recursive=True) if not r.error]
    files = list(itertools.islice(itertools.cycle(files), args.count))

    start = time.perf_counter()
    model = load_keras(args.model, cfg.mlflow.registered_model)
    classify([prepare_row(Row(files[0]), cfg, keep_photo=False)], model)  # warm-up: first call builds the graph
    startup = time.perf_counter() - start

    t0 = time.perf_counter()
    with ThreadPoolExecutor(cfg.predict.workers) as pool:
        rows = list(pool.map(lambda f: prepare_row(Row(f), cfg, keep_photo=False), files))
    t1 = time.perf_counter()
    classify(rows, model)
    t2 = time.perf_counter()

    n, errors = len(rows), sum(bool(r.error) for r in rows)
    print(f"{n} photos ({errors} unreadable) from {args.photos}, {cfg.predict.workers} worker thread(s), "
          f"{os.cpu_count()} CPU cores, work_size {cfg.photo.work_size}")
    print(f"read + preprocess {1000 * (t1 - t0) / n:6.1f} ms/photo")
    print(f"predict           {1000 * (t2 - t1) / n:6.1f} ms/photo")
    print(f"total             {1000 * (t2 - t0) / n:6.1f} ms/photo   (model load + warm-up once: {startup:.1f} s)")


if __name__ == "__main__":
    main()
