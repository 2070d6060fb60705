"""Does the default sweep meet issue 24's must-show every time, or once? Runs
`python -m fmnist.sweep seed=N` for each seed, one after another, each in a folder and sqlite
store of its own (DIR/seed-N), and prints, per seed: the distinct settings it evaluated at some
fidelity (distinct hyperparameter combinations over its trials that ended COMPLETED or PRUNED),
the settings that reached each rung (rung k: at least rung k), the trial slots lost to its time
limits (SKIPPED trials, and trials FAILED as "too slow"), the registered model's test accuracy
(with its 95% interval on the 10,000 test images) and overfit gap, the wall minutes, and whether
it passes the must-show: >= 50 distinct settings, 0 slots lost, test >= 94.0%, gap <= 0.03,
<= 60 wall minutes. Then the mean and spread, and the commit. The table also goes to
DIR/sweep_repeat.md.

    python bench/sweep_repeat.py --seeds 1 2 3 [--out DIR] [-- extra overrides ...]

A default sweep takes about 50 minutes on a 2-core CPU: run it in the background. DIR must
not hold the seeds' stores yet (a rerun would resume a finished sweep, not time one).
"""

from __future__ import annotations

import math
import statistics

from _sweeps import commit, each_seed, pct, read_sweep, rungs_text, seeds_parser

MUST = {"settings": 50, "lost": 0, "test": 0.940, "gap": 0.03, "minutes": 60}  # issue 24's must-show
HEADER = ("| seed | distinct settings | settings per rung | slots lost to too-slow | test accuracy (95% interval) | gap "
          "| wall minutes | best trial | must-show: >= 50 settings, 0 lost, >= 94.0%, gap <= 0.03, <= 60 min |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def passes(r: dict) -> bool:
    return (r["settings"] >= MUST["settings"] and r["lost"] <= MUST["lost"] and r["test"] >= MUST["test"]
            and r["gap"] <= MUST["gap"] and r["minutes"] <= MUST["minutes"])  # NaN (none registered) fails


def row(r: dict) -> str:
    gap = "n/a" if math.isnan(r["gap"]) else f"{r['gap']:+.3f}"
    return (f"| {r['seed']} | {r['settings']} of {r['trials']} trials | {rungs_text(r['per_rung'])} | {r['lost']} "
            f"({r['skipped']} SKIPPED) | {pct(r['test'])} | {gap} | {r['minutes']:.1f} | {r['trial']} | "
            f"{'yes' if passes(r) else 'no'} |")


def main() -> None:
    parser = seeds_parser(__doc__, "sweep_repeat", "every sweep")
    args = parser.parse_args()
    rows = each_seed(args, HEADER, lambda seed, folder, minutes: {"seed": seed, "minutes": minutes,
                                                                   **read_sweep(folder)[2]}, row)
    tests = [r["test"] for r in rows if not math.isnan(r["test"])]
    lines = [HEADER, *map(row, rows), ""]
    if tests:
        spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
        lines.append(f"test accuracy: mean {statistics.mean(tests):.2%}, spread (sd) {spread:.2%}, lowest {min(tests):.2%} "
                     f"({len(tests)} of {len(rows)} seeds registered a model)")
    lines += [f"wall minutes {min(r['minutes'] for r in rows):.1f} to {max(r['minutes'] for r in rows):.1f}; "
              f"must-show met by {sum(map(passes, rows))} of {len(rows)} seeds; sweep.search_minutes "
              f"{rows[0]['search_minutes']}; overrides: {' '.join(args.overrides) or 'none'}; commit {commit()}"]
    print("\n".join(lines[len(rows) + 1:]))
    (args.out / "sweep_repeat.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
