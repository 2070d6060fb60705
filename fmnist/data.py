"""`python -m fmnist.data [--download]`: say where Fashion-MNIST is and verify it, or fetch it
(fmnist/training/data.py)."""

from __future__ import annotations

import argparse

from fmnist.errors import DataError
from fmnist.training.data import FILES, download, find_data_dir, read_idx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--download", action="store_true", help="fetch the official files if none are found")
    args = parser.parse_args()
    try:
        d = find_data_dir()
    except DataError:
        if not args.download:
            raise
        d = download()
    for name in FILES:
        read_idx(d / name)
    print(f"Fashion-MNIST verified in {d}")


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
