"""A distributed sweep end to end: PostgreSQL behind an MLflow server, a chief and two workers
as real processes on loopback, one worker SIGKILLed mid-trial. Nothing is mocked."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from mlflow.tracking import MlflowClient

from fmnist import cli
from fmnist.config import Config, validate
from fmnist.errors import ConfigError
from fmnist.search.cluster import free_port
from tests.conftest import REPO

SWEEP = ["experiment=quick", "data.subset=1500", "tuner.max_trials=6", "search.trainer.epochs.value=2",
         "report.enabled=false", "sweep.name=dist", "distributed.heartbeat=0.5", "distributed.timeout=15"]


@pytest.fixture(scope="module")
def tracking_server() -> Iterator[str]:
    """scripts/tracking_server.sh on free loopback ports, in a directory the postgres user can
    reach (pytest's own tmp dirs are private to root). No PostgreSQL: a loud failure, not a skip."""
    root = Path(tempfile.mkdtemp(prefix="fmnist-tracking-"))
    root.chmod(0o755)
    port = free_port()
    env = {**os.environ, "TRACKING_DIR": str(root), "MLFLOW_PORT": str(port), "PG_PORT": str(free_port()),
           "PYTHON": sys.executable}
    script = str(REPO / "scripts" / "tracking_server.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, f"tracking server did not start (CI installs postgresql):\n{started.stderr}"
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


class Sweep:
    """One `python -m fmnist.sweep` process; a thread keeps its output so the test can wait for a line."""

    def __init__(self, overrides: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "fmnist.sweep", *SWEEP, *overrides], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = next((m for m in map(re.compile(pattern).search, list(self.lines)) if m), None)
            if found:
                return found
            assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {pattern!r}:\n{self.output[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output[-3000:]}")

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s") from None


@pytest.fixture
def processes() -> Iterator[list[Sweep]]:
    """The test's processes: their output is printed (pytest shows it when the test fails)
    and none outlives the test."""
    started: list[Sweep] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
        print(f"--- {' '.join(p.proc.args[3 + len(SWEEP):])} (exit {p.proc.wait()})\n{p.output}")


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_nothing(tracking_server, tmp_path, processes):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO)}
    address = f"distributed.address=127.0.0.1:{free_port()}"
    workers = [Sweep(["distributed.role=worker", address, f"distributed.tuner_id=worker-{i}"], tmp_path, env)
               for i in range(2)]
    processes.extend(workers)
    workers[0].wait_for("waiting for the chief", 180)  # started before the chief: it waits, then joins
    chief = Sweep(["distributed.role=chief", address], tmp_path, env)
    processes.append(chief)
    trial = workers[0].wait_for(r"\[trial (\d+), \d+ of 6\] start", 240).group(1)
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("fmnist").experiment_id
    half_logged = client.search_runs([experiment], f"tags.trial_id = '{trial}' and tags.tuner_id = 'worker-0'")
    assert [r.info.status for r in half_logged] == ["RUNNING"]
    workers[0].proc.send_signal(signal.SIGKILL)

    assert chief.finish(300) == 0
    assert workers[1].finish(60) == 0
    assert workers[0].proc.wait() == -signal.SIGKILL
    assert f"worker-0 silent for 15 s: trial {trial} goes to the next worker" in chief.output
    assert "worker-1: the chief has no trials left; done" in workers[1].output

    runs = client.search_runs([experiment], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    finished = [r for r in kids if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["trial_id"] for r in finished) == [str(i) for i in range(6)], "each trial once"
    assert {r.data.tags["tuner_id"] for r in finished} == {"worker-1"}, "the surviving worker ran them all"
    assert {r.info.status for r in kids} == {"FINISHED", "KILLED"}
    assert [(r.data.tags["trial_id"], r.data.tags["tuner_id"]) for r in kids if r.info.status == "KILLED"] == [
        (trial, "worker-0")], "the killed worker's half-logged run ends KILLED, never FINISHED"
    oracle = json.loads((tmp_path / "sweeps" / "dist" / "oracle.json").read_text())
    assert oracle["ongoing_trials"] == {} and sorted(oracle["end_order"]) == [str(i) for i in range(6)], \
        "the chief's saved state is final: resuming it reruns nothing"
    assert [v.version for v in client.search_model_versions("name='fmnist-cnn'")] == ["1"]
    assert client.get_model_version_by_alias("fmnist-cnn", "best").version == "1"


def state_and_parent(pid: int | str) -> tuple[str, int] | None:
    """A process's state letter and parent pid from /proc/PID/stat; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "(command name)"
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running or sleeping: not gone, not a zombie."""
    found = state_and_parent(pid)
    return found is not None and found[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    stats = {int(p.name): state_and_parent(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    return [child for child, found in stats.items() if found and found[0] != "Z" and found[1] == pid]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the launcher's children follow it via Linux prctl")
@pytest.mark.slow
def test_a_killed_cluster_launcher_takes_its_chief_and_workers_along(tracking_server, tmp_path, processes):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    launcher = Sweep(["cluster.workers=2", "mlflow.experiment=launcher-killed"], tmp_path, env)
    processes.append(launcher)
    launcher.wait_for(r"worker-\d \| \[trial \d+, \d+ of 6\] start", 240)
    started = children_of(launcher.proc.pid)
    assert len(started) == 3, f"a chief and 2 workers: {started}"
    launcher.proc.send_signal(signal.SIGKILL)

    deadline = time.time() + 60
    while any(map(alive, started)) and time.time() < deadline:
        time.sleep(0.5)
    left = [pid for pid in started if alive(pid)]
    for pid in left:  # do not leave them to the rest of the session
        os.kill(pid, signal.SIGKILL)
    assert not left, "the chief and workers outlived their launcher"
    client = MlflowClient(tracking_server)
    runs = client.search_runs([client.get_experiment_by_name("launcher-killed").experiment_id])
    statuses = {(r.info.run_name, r.data.tags.get("tuner_id")): r.info.status for r in runs}
    assert ("dist", None) in statuses and set(statuses.values()) == {"KILLED"}, \
        f"the parent run and the trials' runs end through their cleanup, resumable: {statuses}"


@pytest.mark.parametrize("overrides,message", [
    (["distributed.role=worker"], "distributed: role 'worker' needs distributed.address=HOST:PORT (the chief's)"),
    (["distributed.role=chief", "distributed.address=localhost"],
     "distributed.address='localhost': expected HOST:PORT with a port from 1 to 65535"),
    (["distributed.role=chief", "distributed.address=h:70000"],
     "distributed.address='h:70000': expected HOST:PORT with a port from 1 to 65535"),
    (["distributed.tuner_id=chief-2"], "distributed.tuner_id='chief-2': must not contain 'chief'"),
    (["cluster.workers=2", "distributed.role=chief", "distributed.address=h:1"],
     "cluster.workers starts its own chief and workers; leave distributed.role at none"),
])
def test_bad_distributed_settings_fail_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(Config, cli.compose("train", ["experiment=quick", *overrides]))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_cli_worker_without_address_exits_2_before_anything(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fmnist.sweep", "experiment=quick", "distributed.role=worker"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        "error: config: distributed: role 'worker' needs distributed.address=HOST:PORT (the chief's)"]
    assert not list(tmp_path.iterdir())
