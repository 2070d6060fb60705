"""Trials per hour with 1 and 2 workers on this machine, and the per-call costs that a bigger
cluster rests on (docs/scaling.md).

    python bench/scaling.py [--workers 1,2] [--trials 8] [--subset 2000]

Starts scripts/tracking_server.sh (PostgreSQL + MLflow server) in a temporary directory. For
each worker count it runs `python -m fmnist.sweep experiment=quick cluster.workers=N` with
small one-epoch trials and reads the throughput from MLflow: trials / (last trial's end -
first trial's start), so process start-up and the chief's closing registration do not count.
It counts the server's requests and the artifact bytes per trial, then measures, against
the same server and an in-process chief on loopback:
  - the oracle's round trip per trial (create, get, update, end: the calls a worker makes),
    for the random and the Bayesian oracle, early in a sweep and after `--oracle-trials`;
  - MLflow latency per call: log_metric, log_batch, search_runs (PostgreSQL behind it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import keras_tuner as kt
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from fmnist.config.loading import checked  # noqa: E402
from fmnist.search.cluster import free_port  # noqa: E402
from fmnist.search.distributed import Chief, worker_env  # noqa: E402


def tracking_server(root: Path, action: str) -> dict[str, str]:
    env = {**os.environ, "TRACKING_DIR": str(root), "MLFLOW_PORT": os.environ.get("BENCH_MLFLOW_PORT", "5077"),
           "PG_PORT": os.environ.get("BENCH_PG_PORT", "5478"), "PYTHON": sys.executable}
    subprocess.run([str(REPO / "scripts" / "tracking_server.sh"), action], env=env, check=True)
    return {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{env['MLFLOW_PORT']}"}


def requests_logged(root: Path) -> int:
    """Requests the MLflow server has answered so far (its access log has one line each)."""
    return sum('HTTP/1.1"' in line for line in (root / "mlflow.log").open(errors="replace"))


def artifact_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "artifacts").rglob("*") if p.is_file())


def throughput(workers: int, args, root: Path, env: dict[str, str], cwd: Path) -> dict[str, float]:
    """One `cluster.workers=N` sweep; trials per hour between its first start and last end."""
    name = f"scaling-{workers}w"
    before, bytes_before, start = requests_logged(root), artifact_bytes(root), time.perf_counter()
    subprocess.run([sys.executable, "-m", "fmnist.sweep", "experiment=quick", f"cluster.workers={workers}",
                    f"tuner.max_trials={args.trials}", f"data.subset={args.subset}", "report.enabled=false",
                    f"sweep.name={name}"], cwd=cwd, env={**os.environ, **env, "PYTHONPATH": str(REPO)},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("fmnist").experiment_id
    kids = client.search_runs([exp], f"tags.sweep = '{name}' and attributes.status = 'FINISHED'", max_results=1000)
    trials = [r for r in kids if "trial_id" in r.data.tags]
    span = (max(r.info.end_time for r in trials) - min(r.info.start_time for r in trials)) / 1000
    return {"workers": workers, "trials": len(trials), "span_s": span, "per_hour": len(trials) / span * 3600,
            "wall_s": wall, "requests": (requests_logged(root) - before) / len(trials),
            "kib": (artifact_bytes(root) - bytes_before) / len(trials) / 1024}


def oracle_round_trip(kind: str, trials: int, tmp: Path) -> tuple[float, float]:
    """Median ms per trial of a worker's oracle calls over gRPC: for the first 10 and the last 10."""
    from keras_tuner.src.distribute.oracle_client import OracleClient

    make = {"random": kt.oracles.RandomSearchOracle, "bayesian": kt.oracles.BayesianOptimizationOracle}[kind]
    oracle = make(objective=kt.Objective("val_accuracy", "max"), max_trials=trials + 1, seed=1)
    oracle._set_project_dir(str(tmp), f"oracle-{kind}")
    oracle.verbose = 0
    hp = kt.HyperParameters()
    for name in ("a", "b", "c", "d"):
        hp.Float(name, 0.0, 1.0)
    oracle.update_space(hp)
    cfg = checked("sweep", ["distributed.role=chief", f"distributed.address=127.0.0.1:{free_port()}"]).distributed
    chief = Chief(oracle, cfg, {})
    threading.Thread(target=chief.serve, daemon=True).start()
    worker_env(cfg.model_copy(update={"role": "worker"}), "bench-worker")
    client = OracleClient(oracle)
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = client.create_trial("bench-worker")
        client.get_trial(trial.trial_id)
        values = trial.hyperparameters.values.values()
        client.update_trial(trial.trial_id, {"val_accuracy": 1 - sum((v - 0.3) ** 2 for v in values)})
        trial.status = "COMPLETED"
        client.end_trial(trial)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[:10]), statistics.median(times[-10:])


def mlflow_latency(uri: str, calls: int) -> dict[str, float]:
    """Median ms per tracking call against the server (and PostgreSQL behind it)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fmnist").experiment_id
    run = client.create_run(exp, run_name="latency-probe")
    ms = {}
    for name, call in {
        "log_metric": lambda i: client.log_metric(run.info.run_id, "probe", i, step=i),
        "log_batch (4 metrics)": lambda i: client.log_batch(run.info.run_id, metrics=[
            Metric(k, i, int(time.time() * 1000), i) for k in "abcd"]),
        "search_runs (one trial's runs)": lambda i: client.search_runs([exp], "tags.trial_id = '1'"),
    }.items():
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            call(i)
            times.append((time.perf_counter() - t0) * 1000)
        ms[name] = statistics.median(times)
    client.set_terminated(run.info.run_id)
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--oracle-trials", type=int, default=60)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fmnist-scaling-") as tmp:
        root = Path(tmp) / "tracking"
        root.mkdir()
        os.chmod(tmp, 0o755)  # the postgres user must reach the database directory
        env = tracking_server(root, "start")
        try:
            rows = [throughput(int(n), args, root, env, Path(tmp)) for n in args.workers.split(",")]
            latency = mlflow_latency(env["MLFLOW_TRACKING_URI"], args.calls)
            oracle = {kind: oracle_round_trip(kind, args.oracle_trials, Path(tmp)) for kind in ("random", "bayesian")}
        finally:
            tracking_server(root, "stop")
    print(f"\n{args.trials} trials of experiment=quick on {args.subset} images, 1 epoch each; "
          f"{os.cpu_count()} CPU cores\n")
    print("| workers | trials | first start to last end (s) | trials/hour | command wall (s) "
          "| server requests/trial | artifacts KiB/trial |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workers']} | {r['trials']} | {r['span_s']:.1f} | {r['per_hour']:.0f} | {r['wall_s']:.0f} "
              f"| {r['requests']:.0f} | {r['kib']:.0f} |")
    if len(rows) > 1:
        print(f"\nRatio trials/hour {rows[-1]['workers']} workers / {rows[0]['workers']}: "
              f"{rows[-1]['per_hour'] / rows[0]['per_hour']:.2f}")
    print("\n| oracle over gRPC | ms per trial, trials 1-10 | ms per trial, last 10 of "
          f"{args.oracle_trials} |\n| --- | --- | --- |")
    for kind, (first, last) in oracle.items():
        print(f"| {kind} | {first:.1f} | {last:.1f} |")
    print(f"\n| MLflow call (server + PostgreSQL, loopback) | median ms of {args.calls} |\n| --- | --- |")
    for name, value in latency.items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()
