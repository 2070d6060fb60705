"""`python -m fmnist.data [--download]`: say where Fashion-MNIST is and verify it, or fetch it
(fmnist/training/data.py)."""

from __future__ import annotations

import argparse

from fmnist.errors import DataError
from fmnist.training.data import download, find_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--download", action="store_true",
        help="if the data is missing or fails verification, fetch the missing or bad files into "
             "$FMNIST_DATA_DIR or ~/.keras/datasets/fashion-mnist (from $FMNIST_DATA_URL or the default mirrors)",
    )
    args = parser.parse_args()
    try:
        d = find_data_dir()
    except DataError:  # missing or corrupt (an interrupted earlier download): --download repairs both
        if not args.download:
            raise
        download()
        d = find_data_dir()  # what training reads now, said only once lookup itself finds it verified
    print(f"Fashion-MNIST verified in {d}")


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        raise SystemExit(f"error: {e.label}: {e}") from None
