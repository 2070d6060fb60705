"""Two ways of training timed side by side, for benchmarks that print a ratio: the rounds
alternate, so the noise of a shared machine hits both alike, and only the ratio of medians
is meant to be read."""

from __future__ import annotations

import argparse
import statistics
from typing import Callable


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--subset", type=int, default=20000, help="training images")
    parser.add_argument("--epochs", type=int, default=2, help="per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def compare(paths: dict[str, Callable[[], float]], args: argparse.Namespace, images: int, column: str,
            target: float, note: str = "") -> None:
    """Each path (a call returning its seconds) once to warm up, then `args.rounds` times in
    turn; prints seconds per epoch and the ratio of the first path's median to the second's."""
    for timed in paths.values():
        timed()  # graph tracing, thread pools, a store's schema
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, timed in paths.items():
            times[name].append(timed() / args.epochs)
    print(f"{images} training images, {args.epochs} epochs x {args.rounds} rounds, alternated{note}\n")
    print(f"| {column} | s/epoch (median) | s/epoch (each round) |\n| --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {', '.join(f'{t:.2f}' for t in ts)} |")
    first, second = (statistics.median(ts) for ts in times.values())
    print(f"\nratio {' / '.join(name.split(' (')[0] for name in times)}: {first / second:.3f} (target <= {target})")
