"""What reports cost: alternate `python -m fmnist.train experiment=quick` with reports on
and off, as subprocesses into one throwaway MLflow store, and print a table with the ratio.

    python bench/report_overhead.py [--pairs 4] [--command train|sweep] [extra overrides ...]

Runs alternate ABBA (on, off, off, on, ...) so a drift in machine load hits both arms alike.
Wall time is what a user waits; CPU time (the child's user + system) is steadier on a
shared machine. The budget is a ratio of at most 1.10.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

COMMANDS = {
    "train": ["-m", "fmnist.train", "experiment=quick", "trainer.verbose=0"],
    "sweep": ["-m", "fmnist.sweep", "experiment=quick", "sweep.fresh=true"],
}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], store: Path, reports: bool) -> tuple[float, float]:
    """(wall, cpu) seconds of one command run; raises with its stderr if it fails."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    cmd = [sys.executable, *args, f"report.enabled={str(reports).lower()}", f"sweep.dir={store / 'sweeps'}"]
    wall, cpu = time.perf_counter(), children_cpu()
    out = subprocess.run(cmd, cwd=store, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return time.perf_counter() - wall, children_cpu() - cpu


def report_seconds(store: Path) -> list[float]:
    """The in-process cost each run logged (train runs and sweep trials alike)."""
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    return [v for v in runs.get("metrics.report_seconds", []) if v == v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="runs per arm")
    parser.add_argument("--command", choices=COMMANDS, default="train")
    parser.add_argument("overrides", nargs="*", help="extra key=value for the command")
    args = parser.parse_args()
    command = [*COMMANDS[args.command], *args.overrides]
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="report-overhead-") as tmp:
        store = Path(tmp)
        timed(command, store, reports=True)  # warm-up: creates the store, fills the file cache
        order = [arm for i in range(args.pairs) for arm in ((True, False) if i % 2 == 0 else (False, True))]
        for reports in order:
            times[reports].append(timed(command, store, reports))
            wall, cpu = times[reports][-1]
            print(f"reports {'on ' if reports else 'off'}  wall {wall:6.2f} s  cpu {cpu:6.2f} s", file=sys.stderr)
        logged = report_seconds(store)
    med = {arm: [statistics.median(t[k] for t in times[arm]) for k in (0, 1)] for arm in times}
    print(f"\n`python {' '.join(command)}`, {args.pairs} runs per arm, medians; load average {os.getloadavg()[0]:.1f}")
    print("| reports | wall (s) | CPU (s) |\n| --- | --- | --- |")
    for arm in (False, True):
        print(f"| {'on' if arm else 'off'} | {med[arm][0]:.2f} | {med[arm][1]:.2f} |")
    print(f"| **ratio on/off** | **{med[True][0] / med[False][0]:.3f}** | **{med[True][1] / med[False][1]:.3f}** |")
    if logged:
        print(f"\nreport_seconds logged by the runs (in-process cost): median {statistics.median(logged):.2f} s, "
              f"max {max(logged):.2f} s over {len(logged)} runs")


if __name__ == "__main__":
    main()
