"""A distributed sweep end to end: PostgreSQL behind an MLflow server, a chief and two workers
as real processes on loopback, one worker SIGKILLed mid-trial. Nothing is mocked. Then the
chief against untrusted clients: an in-process chief on loopback and raw gRPC calls (seconds)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import keras_tuner as kt
import pytest
from mlflow.tracking import MlflowClient

from fmnist.config import TOKEN_ENV, Config, DistributedConfig, packaged, validate
from fmnist.config.loading import compose
from fmnist.errors import ConfigError, DistributedError
from fmnist.search import ktapi
from fmnist.search.cluster import free_port, share, worker_count
from fmnist.search.distributed import (
    BEAT,
    LIVE_BEATS,
    SESSION_KEY,
    TOKEN_KEY,
    TUNER_KEY,
    Chief,
    Heartbeat,
)
from tests.conftest import REPO

# selection.max_gap=1: which trials finish the last rung decides the registered one, and the gap
# rule is not what these tests are about (a 1,500-image trial's gap is often above 0.03).
SWEEP = ["experiment=quick", "data.subset=1500", "tuner.max_trials=6", "pruner.rungs=[1,2]", "pruner.eta=2",
         "report.enabled=false", "selection.max_gap=1", "sweep.name=dist", "distributed.heartbeat=0.5",
         "distributed.timeout=15"]


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
           "PYTHONPATH": str(REPO), TOKEN_ENV: secrets.token_urlsafe()}
    address = f"distributed.address=127.0.0.1:{free_port()}"
    workers = [Sweep(["distributed.role=worker", address, f"distributed.tuner_id=worker-{i}"], tmp_path, env)
               for i in range(2)]
    processes.extend(workers)
    workers[0].wait_for("waiting for the chief", 180)  # started before the chief: it waits, then joins
    chief = Sweep(["distributed.role=chief", address], tmp_path, env)
    processes.append(chief)
    trial = workers[0].wait_for(r"\[trial (\d+)\] start", 240).group(1)
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
    launcher.wait_for(r"worker-\d \| \[trial \d+\] start", 240)
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


@pytest.mark.slow
def test_a_cluster_on_a_new_sqlite_store_creates_it_once(tmp_path):
    """The chief and workers open the store at the same moment; creating a new sqlite file's
    tables at once, they collided ("table experiments already exists") until the launcher
    created them first."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "fmnist.sweep", *SWEEP, "tuner.max_trials=2", "cluster.workers=2",
                          "selection.retrain_epochs=0", "selection.promote=1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id], "attributes.status = 'FINISHED'")
    assert len([r for r in runs if r.info.run_name.startswith("trial-")]) == 2


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
def test_bad_distributed_settings_fail_in_one_line(overrides, message, token):
    with pytest.raises(ConfigError) as e:
        validate(Config, compose("train", ["experiment=quick", *overrides]))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("visible,role,expected", [("0", "none", 4), ("0,1", "none", 8), ("", "none", 0),
                                                   ("0", "worker", 0)])
def test_auto_runs_per_gpu_workers_on_each_gpu_and_no_cluster_without_one(monkeypatch, token, visible, role, expected):
    """The GPUs are those CUDA_VISIBLE_DEVICES names, as for any CUDA program; a chief or
    worker (which the launcher starts with the same overrides) never starts a cluster itself."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    address = ["distributed.address=127.0.0.1:1"] if role != "none" else []
    cfg = validate(Config, compose("train", ["experiment=quick", f"distributed.role={role}", *address]))
    assert cfg.cluster.workers == "auto" and worker_count(cfg) == expected


def test_workers_sharing_a_gpu_split_its_memory_and_the_cpu_threads():
    cores = len(os.sched_getaffinity(0))
    envs = [share(i, 8, ["0", "1"]) for i in range(8)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env, _ in envs] == ["0", "1"] * 4
    for env, overrides in envs:
        assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.23"
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert overrides == [f"distributed.threads={max(1, cores // 8)}"]
    assert share(0, 1, ["3"])[0]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.90"
    cpu_env, _ = share(0, 2, [])
    assert cpu_env["CUDA_VISIBLE_DEVICES"] == "" and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in cpu_env


def test_cli_worker_without_address_exits_2_before_anything(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fmnist.sweep", "experiment=quick", "distributed.role=worker"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        "error: config: distributed: role 'worker' needs distributed.address=HOST:PORT (the chief's)"]
    assert not list(tmp_path.iterdir())


@pytest.fixture
def token(monkeypatch) -> str:
    """The sweep's shared secret, in the environment as the cluster launcher passes it."""
    value = secrets.token_urlsafe()
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


@pytest.mark.parametrize("role", ["chief", "worker"])
@pytest.mark.parametrize("value", [None, "", "short-secret", "has spaces in the middle of it"])
def test_a_chief_or_worker_without_a_usable_token_fails_in_one_line(monkeypatch, role, value):
    """A token-less chief would serve anyone who reaches its port (loopback included: every
    local user), so it does not start, before any data is loaded."""
    if value is None:
        monkeypatch.delenv(TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(TOKEN_ENV, value)
    with pytest.raises(ConfigError) as e:
        validate(Config, compose("train", ["experiment=quick", f"distributed.role={role}",
                                               "distributed.address=127.0.0.1:7000"]))
    assert str(e.value).startswith(f"distributed: role '{role}' needs ${TOKEN_ENV}: one secret of 16 or more")
    assert "\n" not in str(e.value)


def settings(address: str, **changes: Any) -> DistributedConfig:
    """The YAML's distributed settings with fast beats: 0.2 s, a worker silent 2 s is dropped."""
    yaml = packaged("config.yaml")["distributed"]
    return DistributedConfig.model_validate({**yaml, "role": "chief", "address": address, "heartbeat": 0.2,
                                             "timeout": 2.0, "wait": 1.0, **changes})


def space(hp: kt.HyperParameters) -> None:
    hp.Float("x", 0.0, 1.0)


def new_chief(address: str, directory: Path, parent: str = "parent-1", **changes: Any) -> Chief:
    oracle = kt.RandomSearch(hypermodel=space, objective=kt.Objective("score", "max"), max_trials=3, seed=1,
                             directory=str(directory), project_name=parent).oracle
    oracle.verbose = 0  # as the sweep's chief: it prints its own lines
    return Chief(oracle, settings(address, **changes), {"parent_run_id": parent, "fingerprint": "f", "tracking_uri": "t"})


@contextmanager
def serving(address: str, directory: Path, parent: str = "parent-1", **changes: Any) -> Iterator[Chief]:
    """A chief in this process, listening on `address` (no reaping, no end: the test drives it)."""
    chief = new_chief(address, directory, parent, **changes)
    server = chief.start()
    try:
        yield chief
    finally:
        server.stop(None).wait()


class Caller:
    """One process calling the chief with raw stubs and the metadata it chooses: a worker as the
    chief sees it, or a client pretending to be one."""

    def __init__(self, address: str, tuner_id: str, token: str | None) -> None:
        self.tuner_id, self.session = tuner_id, uuid.uuid4().hex
        self.metadata = [(TUNER_KEY, tuner_id), (SESSION_KEY, self.session)] + ([(TOKEN_KEY, token)] if token else [])
        channel = grpc.insecure_channel(address)
        self.oracle, self.beat_stub = ktapi.protos.get_service_grpc().OracleStub(channel), channel.unary_unary(BEAT)

    def beat(self, **extra: Any) -> dict[str, str]:
        msg = {"tuner_id": self.tuner_id, "session": self.session, **extra}
        return json.loads(self.beat_stub(json.dumps(msg).encode(), metadata=self.metadata, timeout=5))

    def create(self, tuner_id: str | None = None) -> ktapi.Trial:
        request = ktapi.protos.get_service().CreateTrialRequest(tuner_id=tuner_id or self.tuner_id)
        return ktapi.Trial.from_proto(self.oracle.CreateTrial(request, metadata=self.metadata, timeout=5).trial)

    def update(self, trial_id: str) -> None:
        request = ktapi.protos.get_service().UpdateTrialRequest(trial_id=trial_id, metrics={"score": 0.5})
        self.oracle.UpdateTrial(request, metadata=self.metadata, timeout=5)

    def end(self, trial: ktapi.Trial) -> None:
        trial.status = ktapi.TrialStatus.COMPLETED
        self.oracle.EndTrial(ktapi.protos.get_service().EndTrialRequest(trial=trial.to_proto()),
                             metadata=self.metadata, timeout=5)

    def get_space(self) -> None:
        self.oracle.GetSpace(ktapi.protos.get_service().GetSpaceRequest(), metadata=self.metadata, timeout=5)


def refusal(call: Callable[[], Any]) -> grpc.StatusCode | None:
    """The status code a call is refused with; None if the chief accepted it."""
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return None


def test_a_second_chief_on_the_same_port_fails_in_one_line(token, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with serving(address, tmp_path / "first"):
        with pytest.raises(DistributedError) as e:
            new_chief(address, tmp_path / "second").start()
        assert str(e.value) == (f"cannot listen on {address}: Address already in use; "
                                "another chief (or another program) has that port")
        squatter = grpc.server(futures.ThreadPoolExecutor(1))  # gRPC's default options: SO_REUSEPORT on
        with pytest.raises(RuntimeError, match="Failed to bind"):
            squatter.add_insecure_port(address)  # shares a port only with sockets that also allow it


def test_calls_without_the_sweeps_token_are_refused(token, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with serving(address, tmp_path) as chief:
        for forged in (None, f"not-{token}"):
            caller = Caller(address, "worker-x", forged)
            trial = ktapi.Trial(chief.oracle.get_space(), trial_id="00")
            for call in (caller.beat, caller.create, caller.get_space, partial(caller.update, "00"),
                         partial(caller.end, trial), partial(caller.beat, leaving=True)):
                assert refusal(call) == grpc.StatusCode.UNAUTHENTICATED
        assert not chief.oracle.trials and not chief.seen, "a refused call changed nothing"
        assert refusal(Caller(address, "worker-x", token).get_space) is None


def test_a_worker_with_another_token_is_turned_away_at_once(token, tmp_path, monkeypatch):
    address = f"127.0.0.1:{free_port()}"
    with serving(address, tmp_path):
        monkeypatch.setenv(TOKEN_ENV, f"another-{token}")
        beat = Heartbeat(settings(address, role="worker", wait=60.0), "worker-0", on_end=print)
        started = time.monotonic()
        with pytest.raises(DistributedError) as e:
            beat.join_chief()
    assert str(e.value) == f"the chief at {address} refused this worker's token: set ${TOKEN_ENV} to the chief's"
    assert time.monotonic() - started < 5, "not after distributed.wait"


def test_only_the_live_worker_holding_a_trial_reports_or_ends_it(token, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with serving(address, tmp_path) as chief:
        holder, other = Caller(address, "worker-a", token), Caller(address, "worker-b", token)
        holder.beat(), other.beat()
        trial = holder.create()
        impostor = Caller(address, "worker-a", token)  # the holder's tuner id, not its process
        stranger = Caller(address, "worker-c", token)  # the token, but never joined: nothing reaps it
        for call in (partial(other.update, trial.trial_id), partial(other.end, trial),
                     partial(impostor.update, trial.trial_id), partial(impostor.end, trial),
                     stranger.create, partial(other.create, tuner_id="worker-a")):
            assert refusal(call) == grpc.StatusCode.PERMISSION_DENIED
        assert list(chief.oracle.ongoing_trials) == ["worker-a"], "the trial is still worker-a's, no one else holds one"
        assert not chief.oracle.trials[trial.trial_id].metrics.exists("score"), "no forged result"

        holder.update(trial.trial_id)
        holder.end(trial)
        assert not chief.oracle.ongoing_trials and chief.oracle.trials[trial.trial_id].status == "COMPLETED"


def test_only_the_live_process_of_a_tuner_id_beats_or_leaves_for_it(token, tmp_path):
    """A second process with a worker's tuner id is refused while that worker beats; once it
    has missed LIVE_BEATS beats (dead: a restart), the new one takes its trial over and the old
    one, should it come back, is fenced off."""
    address = f"127.0.0.1:{free_port()}"
    with serving(address, tmp_path, heartbeat=0.5) as chief:  # live: beat within 1.5 s, a margin for a busy CI
        first = Caller(address, "worker-a", token)
        first.beat()
        trial = first.create()
        second = Caller(address, "worker-a", token)
        assert refusal(second.beat) == grpc.StatusCode.ALREADY_EXISTS
        assert second.beat(leaving=True)["state"] == "bye"
        assert chief.oracle.ongoing_trials["worker-a"].trial_id == trial.trial_id, "its leave handed nothing back"
        assert chief.seen["worker-a"][0] == first.session

        time.sleep(LIVE_BEATS * chief.cfg.heartbeat + 0.1)  # the first process stops beating
        assert second.beat()["state"] == "run"
        assert second.create().trial_id == trial.trial_id, "the restart resumes the trial"
        assert first.beat()["state"] == "evicted"
        assert refusal(partial(first.end, trial)) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("new_token", [False, True], ids=["same-token", "new-token"])
def test_a_worker_stops_when_another_sweep_takes_the_chiefs_port(token, tmp_path, monkeypatch, new_token):
    """The chief is killed and a chief of another sweep starts on its port: the worker ends
    ("moved") instead of logging its trials under the old parent run, and the new chief never
    counts it as one of its own."""
    address, ended = f"127.0.0.1:{free_port()}", []
    with serving(address, tmp_path / "old", parent="parent-1"):
        beat = Heartbeat(settings(address, role="worker", timeout=10.0), "worker-0", on_end=ended.append)
        assert beat.join_chief()["parent_run_id"] == "parent-1"
        beat.start()
        time.sleep(LIVE_BEATS * beat.cfg.heartbeat)
        assert not ended, "beats to its own chief go on"
    if new_token:
        monkeypatch.setenv(TOKEN_ENV, f"new-{token}")
    with serving(address, tmp_path / "new", parent="parent-2") as chief:
        beat.join(timeout=5)
        assert ended == ["moved"] and not chief.seen


def test_a_worker_with_another_config_or_store_is_turned_away_in_one_line(store):
    """What the chief tells a joining worker (its sweep's fingerprint and parent run) must
    match the worker's own config and tracking store, or the worker stops before any trial."""
    from fmnist.search.fingerprint import fingerprint
    from fmnist.search.worker import check_chief

    chief = validate(Config, compose("train", ["experiment=quick"]))
    worker = validate(Config, compose("train", ["experiment=quick", "seed=7"]))
    mlflow_run = MlflowClient().create_run(MlflowClient().create_experiment("chief")).info.run_id
    info = {"fingerprint": fingerprint(chief), "parent_run_id": mlflow_run, "tracking_uri": "http://chief:5000"}
    check_chief(chief, info)  # the chief's own config and store: accepted
    with pytest.raises(ConfigError, match="^distributed: the chief's sweep has another config .*chief's overrides$"):
        check_chief(worker, info)
    with pytest.raises(ConfigError, match="lacks the chief's parent run; the chief logs to http://chief:5000"):
        check_chief(chief, {**info, "parent_run_id": "0" * 32})
