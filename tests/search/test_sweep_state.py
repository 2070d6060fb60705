"""A sweep's state folder and its MLflow store: a sweep writes only in a folder it made or was
told to use, removes only its own files there, and a store or marker it cannot use is one line.
Real folders, real sqlite stores, real keras-tuner and, where the command line is the point,
real `python -m fmnist.sweep` processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from fmnist.config import TOKEN_ENV, Config, validate
from fmnist.config.loading import compose
from fmnist.errors import ConfigError, StoreError, SweepError
from fmnist.kinds import sweep
from fmnist.search.cluster import free_port
from fmnist.search.fingerprint import fingerprint
from fmnist.search.state import MARKER, OWNED, clear
from fmnist.search.worker import own_state
from fmnist.training.tracking import use_store
from tests.conftest import REPO, mlflow_store
from tests.search.test_distributed import Sweep
from tests.search.test_sweep import QUICK, quick_cfg, run_sweep

# What a sweep leaves in its folder (a quick sweep's, by name), to be removed on a fresh start
OURS = {MARKER: '{"run_id": "old", "fingerprint": "old"}', "oracle.json": "{}", "tuner0.json": "{}",
        "trial_0/trial.json": "{}", "trial_0/checkpoint.weights.h5": "", "trial_12/build_config.json": "{}",
        f".{MARKER}.x1y2.part": ""}
# What a user keeps beside it, or in a folder that was never a sweep's
THEIRS = {"notes.txt": "precious", "data/train.csv": "a,b", "trial_notes/plan.md": "# plan",
          "trial_3.txt": "not a trial folder", "oracle.json.bak": "{}"}


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def sweep_cfg(*overrides: str) -> Config:
    return validate(Config, quick_cfg(overrides))


@pytest.fixture
def token(monkeypatch) -> str:
    value = secrets.token_urlsafe()
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


# -- 1. a folder the sweep did not make -------------------------------------------------------

def test_an_existing_folder_without_our_marker_is_refused_and_kept(store, tmp_path):
    """`sweep.dir=D sweep.name=precious` where D/precious is a user's folder: refused in one line
    (exit 2) before anything is loaded, and every file in it as it was (keras-tuner's fresh start
    used to delete the folder whole)."""
    precious = tmp_path / "D" / "precious"
    precious.mkdir(parents=True)
    write(precious, THEIRS)
    before = contents(precious)
    with pytest.raises(ConfigError) as e:
        sweep(sweep_cfg("sweep.dir=D", "sweep.name=precious"))
    assert str(e.value) == (
        f"sweep.name='precious': {Path('D/precious')} exists and fmnist did not make it (it holds no {MARKER} or "
        f"{OWNED}); choose another sweep.name or sweep.dir, or use it anyway with sweep.fresh=true: fmnist then "
        "adds its files there and removes only those")
    assert (e.value.label, e.value.exit_code) == ("config", 2)
    assert contents(precious) == before and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_sweep_fresh_in_a_folder_we_did_not_make_removes_only_a_sweeps_files(store, tmp_path):
    """With sweep.fresh=true the user's folder is used: the files a sweep writes (an old
    sweep's marker, oracle, tuner and trial folders) go, the user's files stay, and the new
    sweep's state is whole (the stale tuner0.json would otherwise have been reloaded)."""
    folder = tmp_path / "D" / "precious"
    folder.mkdir(parents=True)
    write(folder, {**THEIRS, **OURS})
    run_sweep(f"sweep.dir={tmp_path / 'D'}", "sweep.name=precious", "sweep.fresh=true", "tuner.max_trials=1")
    after = contents(folder)
    assert {k: after.get(k) for k in THEIRS} == {k: v.encode() for k, v in THEIRS.items()}
    assert not (folder / "trial_12").exists() and not (folder / f".{MARKER}.x1y2.part").exists()
    assert json.loads(after[MARKER])["run_id"] != "old" and OWNED in after
    assert json.loads(after["trial_0/trial.json"])["status"] == "COMPLETED"


def test_a_fresh_start_removes_only_the_files_a_sweep_writes(tmp_path):
    write(tmp_path, {**THEIRS, **OURS, OWNED: ""})
    clear(tmp_path)
    assert sorted(contents(tmp_path)) == sorted([*THEIRS, OWNED])


@pytest.mark.parametrize("folder", ["missing/..", "sweeps/../..", "a/../b", "", "  "])
def test_a_sweep_dir_with_a_way_up_or_none_is_refused(folder):
    """TensorFlow's file layer (keras-tuner's) reads `missing/..` as `.`, even where `missing` does not exist."""
    with pytest.raises(ConfigError) as e:
        validate(Config, compose("train", [f"sweep.dir='{folder}'"]))
    assert str(e.value) == (f"sweep.dir={folder!r}: must be a folder path without a '..' component "
                            "(e.g. sweeps, /data/sweeps)")


@pytest.mark.parametrize("setting, line", [
    ("sweep.dir={tmp}/afile", "sweep.dir='{tmp}/afile': cannot hold sweep state: {tmp}/afile/.locks: Not a directory"),
    ("sweep.dir={tmp}/afile/below", "sweep.dir='{tmp}/afile/below': cannot hold sweep state: "
                                    "{tmp}/afile/below/.locks: Not a directory"),
    ("sweep.name=afile", "sweep.name='afile': {tmp}/afile is a file, not a folder; choose another sweep.name"),
])
def test_a_sweep_dir_or_name_that_is_a_file_is_one_line(store, tmp_path, setting, line):
    (tmp_path / "afile").write_text("precious")
    overrides = [setting.format(tmp=tmp_path), *([] if setting.startswith("sweep.dir") else [f"sweep.dir={tmp_path}"])]
    with pytest.raises(ConfigError) as e:
        sweep(sweep_cfg(*overrides))
    assert str(e.value) == line.format(tmp=tmp_path)
    assert (tmp_path / "afile").read_text() == "precious"


# -- 2. a worker's tuner id and folder ---------------------------------------------------------

@pytest.mark.parametrize("tuner_id", ["..", ".", "../elsewhere", "a/b", "", ".hidden"])
def test_a_worker_tuner_id_must_be_a_plain_name(tuner_id, token):
    with pytest.raises(ConfigError) as e:
        validate(Config, compose("train", ["distributed.role=worker", "distributed.address=127.0.0.1:1",
                                               f"distributed.tuner_id='{tuner_id}'"]))
    assert str(e.value).startswith(f"distributed.tuner_id={tuner_id!r}: must be a plain name")


def chief_state(tmp_path: Path) -> Path:
    """The files of a running chief's sweep `dist`, as a quick sweep writes them."""
    state = tmp_path / "sweeps" / "dist"
    state.mkdir(parents=True)
    write(state, {**OURS, OWNED: ""})
    write(tmp_path / "sweeps", {".locks/dist.lock": "12345\n"})
    return state


def test_a_worker_named_dot_dot_is_refused_before_it_touches_the_chiefs_folder(tmp_path, token):
    """`distributed.tuner_id='..'` made the worker's state folder <name>-workers/.. = sweep.dir,
    which its fresh start deleted: the chief's lock, marker, tuner0.json and trials."""
    chief_state(tmp_path)
    before = contents(tmp_path / "sweeps")
    out = subprocess.run([sys.executable, "-m", "fmnist.sweep", *QUICK, "sweep.name=dist", "distributed.role=worker",
                          "distributed.address=127.0.0.1:1", "distributed.wait=1", "distributed.tuner_id='..'"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert error_lines(out.stderr) == [
        "error: config: distributed.tuner_id='..': must be a plain name: letters, digits, '_', '.', '-', not "
        "starting with '.' (it names a folder under <sweep.dir>/<sweep.name>-workers)"]
    assert contents(tmp_path / "sweeps") == before


@pytest.mark.slow
def test_a_worker_named_dot_dot_beside_a_live_chief_deletes_nothing(tmp_path, token):
    """The probe as it was run: a chief serving sweep `dist`, then a worker with tuner id `..`
    in the same folder. The worker is turned away; the chief's files are all still there."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONPATH": str(REPO),
           "PYTHONUNBUFFERED": "1"}
    address = f"distributed.address=127.0.0.1:{free_port()}"
    chief = Sweep(["distributed.role=chief", address], tmp_path, env)
    try:
        chief.wait_for(r"\[chief\] serving the oracle", timeout=300)
        state = tmp_path / "sweeps" / "dist"
        before = contents(state)
        assert {MARKER, "tuner0.json"} <= set(before)
        worker = Sweep(["distributed.role=worker", address, "distributed.tuner_id='..'"], tmp_path, env)
        try:
            exited = worker.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # it joined the chief and is running trials
            exited = None
            worker.proc.kill()
        assert contents(state) == before and (tmp_path / "sweeps" / ".locks" / "dist.lock").exists()
        assert exited == 2, worker.output[-3000:]
    finally:
        chief.proc.send_signal(signal.SIGTERM)
        chief.finish(timeout=120)


def test_a_workers_fresh_start_removes_only_its_own_files(tmp_path):
    """A worker's state is <sweep.dir>/<sweep.name>-workers/<tuner_id>: a restart clears its
    own tuner file and trial folders there, and nothing else; a folder it did not make is refused."""
    cfg = sweep_cfg(f"sweep.dir={tmp_path}", "sweep.name=dist")
    mine = tmp_path / "dist-workers" / "worker-0"
    mine.mkdir(parents=True)
    write(mine, {**THEIRS, OWNED: "", "worker-0.json": "{}", "trial_0/trial.json": "{}", "tuner0.json": "{}"})
    assert own_state(cfg, "worker-0") == mine
    assert sorted(contents(mine)) == sorted([*THEIRS, OWNED, "tuner0.json"])
    foreign = tmp_path / "dist-workers" / "worker-1"
    foreign.mkdir()
    write(foreign, {"notes.txt": "precious"})
    with pytest.raises(ConfigError, match=r"^distributed.tuner_id='worker-1': .*worker-1 exists and fmnist did not "
                                          r"make it .*choose another distributed.tuner_id or sweep.dir"):
        own_state(cfg, "worker-1")
    assert contents(foreign) == {"notes.txt": b"precious"}


# -- 8. a marker, a store or a search the sweep cannot use ------------------------------------

@pytest.mark.parametrize("marker, why", [("{not json", "not JSON"), ('{"run_id": "abc"}', "no fingerprint"),
                                          ("[]", "no run_id or fingerprint"), ("", "not JSON")])
def test_a_damaged_marker_is_one_line_and_deletes_nothing(store, tmp_path, marker, why):
    state = tmp_path / "sweeps" / "quick"
    state.mkdir(parents=True)
    write(state, {**OURS, MARKER: marker})
    before = contents(state)
    with pytest.raises(ConfigError) as e:
        sweep(sweep_cfg())
    assert str(e.value) == (f"sweep.name='quick': its marker {Path('sweeps/quick') / MARKER} is damaged ({why}), so "
                            "the sweep cannot resume; rerun with sweep.fresh=true to start it again (fmnist removes "
                            "only its own files), or choose another sweep.name")
    assert {k: v for k, v in contents(state).items() if k != OWNED} == before
    assert not (tmp_path / "mlflow.db").exists(), "refused before the store is opened"


def test_a_deleted_experiment_is_one_line_saying_how_to_restore_it(store):
    client = MlflowClient()
    experiment = client.create_experiment("fmnist")
    client.delete_experiment(experiment)
    with pytest.raises(ConfigError) as e:
        use_store(sweep_cfg().mlflow)
    assert str(e.value) == (f"mlflow.experiment='fmnist': this experiment is deleted in the tracking store {store}; "
                            f"restore it (mlflow experiments restore --experiment-id {experiment}) or choose another "
                            "mlflow.experiment")


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` made unwritable for real: by its mode for a user; root ignores modes, so for root
    also by the immutable attribute (which the kernel enforces on root too)."""
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_read_only_artifact_folder_is_one_line_naming_it(store, tmp_path):
    """MLflow writes artifacts to ./mlruns: read-only, the first artifact a run logged raised,
    after the sweep's parent run had started. Now the store is refused before any run."""
    (tmp_path / "mlruns").mkdir()
    with read_only(tmp_path / "mlruns"), pytest.raises(StoreError) as e:
        use_store(sweep_cfg().mlflow)
    folder = tmp_path / "mlruns" / MlflowClient().get_experiment_by_name("fmnist").experiment_id
    assert str(e.value).startswith(f"the artifact folder {folder} is not writable (")
    assert str(e.value).endswith("): make it writable, or log to another store (MLFLOW_TRACKING_URI or "
                                 "mlflow.tracking_uri)")
    assert e.value.exit_code == 1 and e.value.label == "mlflow"
    assert not MlflowClient().search_runs([MlflowClient().get_experiment_by_name("fmnist").experiment_id])


def test_a_resume_on_another_tracking_store_names_both_stores(tmp_path):
    """The marker records the store the sweep logged to; resumed with MLFLOW_TRACKING_URI
    pointing elsewhere, the parent run is not there: one line naming both, nothing deleted."""
    cfg = sweep_cfg()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with mlflow_store(tmp_path / "a") as first:
        use_store(cfg.mlflow)
        with mlflow.start_run(run_name="quick") as run:
            pass
    state = tmp_path / "b" / "sweeps" / "quick"
    state.mkdir(parents=True)
    marker = {"run_id": run.info.run_id, "fingerprint": fingerprint(cfg), "tracking_uri": first}
    write(state, {**OURS, OWNED: "", MARKER: json.dumps(marker)})
    before = contents(state)
    with mlflow_store(tmp_path / "b") as second, pytest.raises(ConfigError) as e:
        sweep(cfg)
    assert str(e.value) == (f"sweep.name='quick': its parent run {run.info.run_id} is not in the tracking store "
                            f"{second}; the sweep logged to {first}: set MLFLOW_TRACKING_URI (or mlflow.tracking_uri) "
                            "to that, or rerun with sweep.fresh=true to start the sweep again")
    assert contents(state) == before


# One block of two valid 11x11 convs leaves 4x4; a second block (the space's count) shrinks it away.
SHRINKING = ("model.conv_blocks=[{filters:8,convs:2,kernel:11,stride:1,padding:valid,pool:true,batch_norm:false,"
             "dropout:0.0}]", "search.model.conv_blocks.min=2")


@pytest.mark.slow
def test_a_search_where_every_trial_fails_is_one_line_with_the_reason(store, capfd):
    """keras-tuner stops after max(3, max_trials) failures in a row with a RuntimeError; the
    sweep says instead, in one line, that every trial failed and why the last one did."""
    with pytest.raises(SweepError) as e:
        sweep(sweep_cfg("sweep.name=failing", *SHRINKING))
    assert str(e.value) == ("every trial failed, so the search stopped; the last one: invalid config: conv_blocks[1] "
                            "shrinks the 28x28 input to nothing; use padding 'same' or fewer blocks. Fix the cause "
                            "(the search space, sweep.trial_minutes) and rerun with sweep.fresh=true")
    assert e.value.exit_code == 1 and e.value.label == "sweep"
    output = capfd.readouterr()
    assert "Traceback" not in output.out + output.err, "keras-tuner prints no trial's traceback"
    assert "skipped invalid config: conv_blocks[1] shrinks" in output.out  # never trained: no slot used
    parent = next(r for r in MlflowClient().search_runs([MlflowClient().get_experiment_by_name("fmnist").experiment_id])
                  if r.info.run_name == "failing")
    assert parent.info.status == "FAILED"


# -- 9. two sweeps opening a new store at once -------------------------------------------------

@pytest.mark.slow
def test_two_sweeps_started_at_once_on_a_new_sqlite_store_both_run(tmp_path):
    """Both create the new store's tables at the same moment unless they take turns; one used to
    crash in the migration ("table experiments already exists", "duplicate column")."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'new.db'}", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "fmnist.sweep", *QUICK, "tuner.max_trials=1", "report.enabled=false"]
    procs = [subprocess.Popen([*cmd, f"sweep.name={name}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for name in ("first", "second")]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, output in zip(procs, outputs, strict=True):
        assert p.returncode == 0, output[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id], "attributes.status = 'FINISHED'")
    assert {r.info.run_name for r in runs} >= {"first", "second"}


# -- 12. a search space's entries at int keys --------------------------------------------------

E, F, S = "trainer.epochs", "model.conv_blocks.*.filters", "data.subset"


@pytest.mark.parametrize("entry, message", [
    ({E: {"type": "float", "min": 1, "max": 3}},
     f"search.{E}: type 'float' draws fractions from 1 to 3, and {E} takes whole numbers; use type int (or choice)"),
    ({S: {"type": "log_float", "min": 1000, "max": 3000}},
     f"search.{S}: type 'log_float' draws fractions from 1000 to 3000, and {S} takes whole numbers"),
    ({F: {"type": "float", "min": 8, "max": 16, "step": 4}}, f"search.{F}: type 'float' draws fractions from 8 to 16"),
    ({E: {"type": "int", "min": 1, "max": 3, "step": 0.5}}, f"search.{E}: type 'int' takes whole numbers for min, max"),
    ({E: {"type": "int", "min": 1.5, "max": 3}}, f"search.{E}: type 'int' takes whole numbers for min, max and step"),
    ({E: {"type": "int", "min": 1, "max": 3, "step": 0}}, f"search.{E}: step 0 must be above 0"),
    ({"model.conv_blocks": {"type": "choice", "values": [True]}}, "search.model.conv_blocks: a list's length takes"),
])
def test_a_range_that_gives_fractions_at_an_int_key_is_refused(entry, message):
    """Only a range's two ends were checked, and 1.0 and 3.0 pass as ints: the 2.4 a trial drew
    between them failed that trial, not the config."""
    with pytest.raises(ConfigError) as e:
        validate(Config, quick_cfg(space=entry))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_float_range_at_a_float_key_still_passes():
    validate(Config, quick_cfg(space={"model.learning_rate": {"type": "float", "min": 0.001, "max": 0.003},
                                      "model.conv_blocks.*.dropout": {"type": "float", "min": 0, "max": 0.3}}))
