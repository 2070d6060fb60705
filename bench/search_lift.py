"""What does the search buy over training the original recipe for the same wall time? For each
seed N, in a folder and sqlite store of its own (DIR/seed-N), one after another:

1. the sweep: `python -m fmnist.sweep seed=N [overrides]`, timed from outside: W wall minutes;
2. the baseline: the original project's recipe (`experiment=seed_final`: its architecture,
   optimizer, learning rate and batch size) trained with the augmentation and learning-rate
   schedule the sweep's trials and retrain trained with (every `model.augment.*` and
   `trainer.lr_schedule` value, read from the sweep's own record: the retrain run's params, else
   the registered trial's, over the parent run's config; for the default config that is
   flips, 1-pixel shifts, mirror averaging and the cosine schedule), for as many epochs as fit
   in W minutes, as one `python -m fmnist.train` run (MLflow experiment `baseline`).

How the baseline's epochs are sized: fmnist.train has no key that stops training by time, so a
probe run of the same command with `trainer.epochs=2` (--probe-epochs) is timed first: its
steady seconds per epoch `s` come from the timestamps of its per-epoch `loss` metric (one epoch
to the next: no compile time), else from train_seconds / epochs_run; everything else that run
cost (process start, data, the first epoch's compile, test, reports, model logging) is its
fixed cost `f` = probe wall - probe epochs x s. Then epochs = floor((W x 60 - probe wall - f) / s):
the probe is counted against the baseline's budget, so probe + baseline take about W minutes
in all (both shown). Nor does fmnist.train keep the best epoch within the gap limit, as the
sweep's retrain does: the baseline's model is its last epoch's, and its gap is shown, not enforced.

Printed, and written to DIR/search_lift.md: per seed, each side's test accuracy on the same
10,000 test images (each side's own model, tested once: the version the sweep registered, the
baseline run's final model) with its 95% interval, the lift in points, the sweep's settings per
rung (distinct trials that reached at least rung k) and SKIPPED trials, wall minutes of each,
the gaps; then the mean lift with its 95% t-interval over the seeds, each baseline command line
and the commit.

    python bench/search_lift.py --seeds 1 2 3 [--out DIR] [--probe-epochs 2] [-- extra overrides ...]

The overrides go to both sides (not `experiment=` or `seed=`: the baseline is seed_final, the
seed is N). A default sweep takes about 50 minutes on a 2-core CPU, so a seed takes about 100.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _sweeps import (
    all_runs,
    commit,
    each_seed,
    pct,
    read_sweep,
    rungs_text,
    seeds_parser,
    store_uri,
    t_interval,
)
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

EXPERIMENT = "baseline"  # the baseline's MLflow experiment, in the seed's store beside the sweep's runs
MAX_EPOCHS = 1000  # trainer.epochs' upper bound in the config schema
# What the sweep trains with that seed_final does not set the same way (every key under these).
RECIPE_KEYS = ("model.augment.", "trainer.lr_schedule")


def hydra_value(text: str) -> str:
    """A param as MLflow stores it (str(value)), as a Hydra override value."""
    return {"True": "true", "False": "false", "None": "null"}.get(text, text)


def sweep_recipe(client: MlflowClient, parent: Run) -> list[str]:
    """`key=value` for every RECIPE_KEYS param of the sweep: the parent's config, with the
    values its retrain run (tag role=final) or else its registered trial trained with over them."""
    params = dict(parent.data.params)
    kids = all_runs(client, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    final = [r for r in kids if r.data.tags.get("role") == "final"]
    trial = parent.data.tags.get("best_trial_id")
    source = final or [r for r in kids if trial is not None and r.data.tags.get("trial_id") == trial]
    if source:
        params.update(source[-1].data.params)
    recipe = [f"{k}={hydra_value(v)}" for k, v in sorted(params.items()) if k.startswith(RECIPE_KEYS)]
    if not any(r.startswith("trainer.lr_schedule=") for r in recipe):
        sys.exit(f"error: the sweep's parent run {parent.info.run_id} has no trainer.lr_schedule param")
    return recipe


def baseline_command(seed: int, recipe: list[str], epochs: int, name: str, overrides: list[str]) -> list[str]:
    return ["python", "-m", "fmnist.train", "experiment=seed_final", *recipe, f"trainer.epochs={epochs}",
            f"seed={seed}", f"mlflow.experiment={EXPERIMENT}", f"mlflow.run_name={name}", *overrides]


def train(command: list[str], folder: Path, name: str) -> tuple[Run, float]:
    """One fmnist.train run in `folder`'s store (its output in NAME.log): the run and its wall seconds."""
    start = time.perf_counter()
    with open(folder / f"{name}.log", "w") as log:
        done = subprocess.run([sys.executable, *command[1:]], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "MLFLOW_TRACKING_URI": store_uri(folder)})
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"error: {shlex.join(command)} exited {done.returncode}; see {folder / f'{name}.log'}")
    client = MlflowClient(store_uri(folder))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0], seconds


def epoch_seconds(client: MlflowClient, run: Run) -> float:
    """Steady seconds per epoch: the median time from one epoch's `loss` to the next's (the
    first epoch's compile left out); with one epoch only, train_seconds / epochs_run."""
    points = sorted((m.step, m.timestamp) for m in client.get_metric_history(run.info.run_id, "loss"))
    gaps = sorted((b[1] - a[1]) / 1000 for a, b in zip(points, points[1:], strict=False))
    if gaps:
        return gaps[len(gaps) // 2]
    m = run.data.metrics
    return m["train_seconds"] / m["epochs_run"]


def baseline(seed: int, folder: Path, minutes: float, recipe: list[str], overrides: list[str],
             probe_epochs: int) -> dict:
    """The probe, then the baseline sized to what is left of `minutes`."""
    probe, probe_wall = train(baseline_command(seed, recipe, probe_epochs, "baseline-probe", overrides), folder,
                              "baseline-probe")
    s = epoch_seconds(MlflowClient(store_uri(folder)), probe)
    fixed = max(0.0, probe_wall - probe_epochs * s)
    epochs = min(MAX_EPOCHS, max(1, math.floor((minutes * 60 - probe_wall - fixed) / s)))
    command = baseline_command(seed, recipe, epochs, "baseline", overrides)
    run, wall = train(command, folder, "baseline")
    m = run.data.metrics
    return {"test": m["test_accuracy"], "gap": m["overfit_gap"], "epochs": epochs, "epoch_seconds": s,
            "fixed": fixed, "probe_minutes": probe_wall / 60, "minutes": (probe_wall + wall) / 60,
            "command": shlex.join(command)}


HEADER = ("| seed | sweep test (95% interval) | baseline test (95% interval) | lift (points) "
          "| sweep settings per rung | SKIPPED | sweep wall min | baseline wall min (probe + run) "
          "| baseline epochs (s/epoch) | gap sweep / baseline |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def row(r: dict) -> str:
    s, b = r["sweep"], r["baseline"]
    return (f"| {r['seed']} | {pct(s['test'])} | {pct(b['test'])} | {r['lift']:+.2f} | {rungs_text(s['per_rung'])} | "
            f"{s['skipped']} | {s['minutes']:.1f} | {b['minutes']:.1f} ({b['probe_minutes']:.1f} + "
            f"{b['minutes'] - b['probe_minutes']:.1f}) | {b['epochs']} ({b['epoch_seconds']:.1f} s) | "
            f"{s['gap']:+.3f} / {b['gap']:+.3f} |")


def main() -> None:
    parser = seeds_parser(__doc__, "search_lift", "the sweep and the baseline alike")
    parser.add_argument("--probe-epochs", type=int, default=2, help="epochs of the timing probe (2: one steady "
                        "epoch-to-epoch interval)")
    args = parser.parse_args()
    clash = [o for o in args.overrides if o.lstrip("+~").split("=")[0] in ("experiment", "seed")]
    if clash:
        parser.error(f"{' '.join(clash)}: the baseline is experiment=seed_final and each side gets seed=N; "
                     "pass the settings themselves (e.g. data.subset=3000)")
    if args.probe_epochs < 1:
        parser.error("--probe-epochs must be 1 or more")
    def measure(seed: int, folder: Path, minutes: float) -> dict:
        client, parent, sweep = read_sweep(folder)
        sweep["minutes"] = minutes
        b = baseline(seed, folder, minutes, sweep_recipe(client, parent), args.overrides, args.probe_epochs)
        return {"seed": seed, "sweep": sweep, "baseline": b, "lift": 100 * (sweep["test"] - b["test"])}

    rows = each_seed(args, HEADER, measure, row)
    lifts = [r["lift"] for r in rows if not math.isnan(r["lift"])]
    interval = t_interval(lifts)
    mean = (f"mean lift {interval[0]:+.2f} points, 95% interval {interval[0] - interval[1]:+.2f} to "
            f"{interval[0] + interval[1]:+.2f} (t over {len(lifts)} seeds)" if interval else
            f"mean lift {lifts[0]:+.2f} points, 95% interval n/a (1 seed)" if lifts else
            "mean lift n/a (no sweep registered a model)")
    lines = [
        HEADER, *map(row, rows), "", mean,
        "Both sides: the same 10,000 test images, each side's own model tested once (the version the sweep "
        "registered, selected on validation within its gap limit; the baseline run's last epoch, its gap not "
        "enforced); the baseline trains for the sweep's wall minutes, its timing probe included.",
        *(f"baseline, seed {r['seed']}: `{r['baseline']['command']}` (fixed cost {r['baseline']['fixed']:.0f} s)"
          for r in rows),
        f"sweep: `{shlex.join(['python', '-m', 'fmnist.sweep', 'seed=N', *args.overrides])}`, sweep.search_minutes "
        f"{rows[0]['sweep']['search_minutes']}; commit {commit()}",
    ]
    print("\n".join(lines[len(rows) + 1:]))
    (args.out / "search_lift.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
