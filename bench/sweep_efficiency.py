"""How much training did the sweep need to reach the original 93.4%, against the original recipe?

    python bench/sweep_efficiency.py [--sweep default] [--train-original]

Reads the sweep's parent run from the MLflow store (the one `mlflow ui` shows): epochs
trained over all its trials and the retrain, wall time, and the registered model's test
accuracy. The original recipe is seed_final for 100 epochs; its cost here is 100 x the
seconds per epoch of the newest `seed_final` run in the store (bench/progression.py makes
one), or, with --train-original, a real 100-epoch run trained now (about 30 min here).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from mlflow.tracking import MlflowClient

TARGET, ORIGINAL_EPOCHS = 0.934, 100


def newest(client: MlflowClient, experiments: list[str], where: str):
    ids = [e.experiment_id for e in map(client.get_experiment_by_name, experiments) if e]
    runs = client.search_runs(ids, where, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        sys.exit(f"error: no run matches {where!r} in experiments {experiments}")
    return runs[0]


def sweep_cost(client: MlflowClient, name: str) -> tuple[int, float, float]:
    """(epochs over all trials and the retrain, wall minutes, registered test accuracy)."""
    parent = newest(client, ["fmnist"], f"attributes.run_name = '{name}' and tags.registered_version != ''")
    kids = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              max_results=10000)
    epochs = sum(len({m.step for m in client.get_metric_history(r.info.run_id, "loss")})
                 for r in kids if r.info.status == "FINISHED")
    m = parent.data.metrics
    return epochs, m["sweep_minutes"], m["best_test_accuracy"]


def original_cost(client: MlflowClient, train: bool) -> tuple[float, float, str]:
    """(wall minutes for 100 epochs, test accuracy or NaN, where the figure comes from)."""
    if train:
        subprocess.run([sys.executable, "-m", "fmnist.train", "experiment=seed_final", "mlflow.experiment=progression",
                        "trainer.verbose=0"], check=True)
    run = newest(client, ["progression", "fmnist"], "tags.experiment = 'seed_final'")
    m = run.data.metrics
    per_epoch = m["train_seconds"] / m["epochs_run"]
    measured = m["epochs_run"] >= ORIGINAL_EPOCHS
    source = f"run {run.info.run_id[:8]}, {m['epochs_run']:.0f} epochs" + ("" if measured else ", extrapolated")
    return per_epoch * ORIGINAL_EPOCHS / 60, m["test_accuracy"] if measured else float("nan"), source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="default")
    parser.add_argument("--train-original", action="store_true")
    args = parser.parse_args()
    client = MlflowClient()
    s_epochs, s_minutes, s_test = sweep_cost(client, args.sweep)
    o_minutes, o_test, source = original_cost(client, args.train_original)
    print("| recipe | epochs | wall minutes | test accuracy | reaches 93.4% |\n| --- | --- | --- | --- | --- |")
    print(f"| sweep `{args.sweep}` (all trials + retrain) | {s_epochs} | {s_minutes:.1f} | {s_test:.2%} | "
          f"{'yes' if s_test >= TARGET else 'no'} |")
    print(f"| original: seed_final x {ORIGINAL_EPOCHS} epochs ({source}) | {ORIGINAL_EPOCHS} | {o_minutes:.1f} | "
          f"{'93.40% (original report)' if o_test != o_test else f'{o_test:.2%}'} | as reported |")
    print(f"\nratio sweep / original: epochs {s_epochs / ORIGINAL_EPOCHS:.2f}, wall time {s_minutes / o_minutes:.2f}")


if __name__ == "__main__":
    main()
