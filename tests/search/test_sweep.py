"""Real tiny sweeps into temporary MLflow stores: trials vs child runs, the alias, resume."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import keras_tuner as kt
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from fmnist.config import Config, SelectionConfig, validate
from fmnist.config.loading import compose
from fmnist.errors import ConfigError, SweepError
from fmnist.files import atomic
from fmnist.kinds import sweep
from fmnist.kinds.fashion import SpaceHyperModel
from fmnist.search.leaderboard import leaderboard
from fmnist.search.registry import keras_holder_score, register_if_better
from fmnist.search.sweeping import MARKER, locked
from fmnist.serving.classifier import log_photo_model
from fmnist.serving.loading import load_keras
from fmnist.training.data import load_arrays, load_splits
from fmnist.training.model import build_model

QUICK = ["experiment=quick", "data.subset=1500"]
WORSE = {"model.learning_rate": {"type": "fixed", "value": 1.0e-6}}  # cannot learn in one epoch


def quick_cfg(overrides: tuple[str, ...] = (), space: dict | None = None):
    """The quick experiment with overrides and search-space entries replaced outright."""
    cfg = compose("train", [*QUICK, *overrides])
    OmegaConf.set_struct(cfg, False)
    for name, entry in (space or {}).items():
        cfg.search[name] = entry
    return cfg


def run_sweep(*overrides: str, space: dict | None = None) -> None:
    assert sweep(validate(Config, quick_cfg(overrides, space))) == 0


def runs_of(client: MlflowClient) -> list:
    return client.search_runs([client.get_experiment_by_name("fmnist").experiment_id], max_results=1000)


def children(client: MlflowClient, parent_id: str) -> list:
    return [r for r in runs_of(client) if r.data.tags.get("mlflow.parentRunId") == parent_id]


def tuner_trials(name: str) -> dict[str, dict]:
    trials = (json.loads(p.read_text()) for p in Path("sweeps", name).glob("trial_*/trial.json"))
    return {t["trial_id"]: t for t in trials}


@pytest.mark.slow
def test_quick_sweep_tracks_each_trial_and_registers(store):
    run_sweep()
    client = MlflowClient()
    parents = [r for r in runs_of(client) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_name == "quick"
    assert parents[0].data.tags["tuner"] == "random" and parents[0].info.status == "FINISHED"
    kids = children(client, parents[0].info.run_id)
    trials = tuner_trials("quick")
    assert sorted(r.data.tags["trial_id"] for r in kids) == sorted(trials) == ["0", "1", "2"]
    for r in kids:
        expected = {k: str(v) for k, v in trials[r.data.tags["trial_id"]]["hyperparameters"]["values"].items()}
        assert r.data.params == expected
        assert r.info.status == "FINISHED"
        assert {"train_accuracy", "val_accuracy", "test_accuracy", "overfit_gap", "loss"} <= set(r.data.metrics)
        # the model the params expand to
        built = yaml.safe_load(mlflow.artifacts.load_text(f"{r.info.artifact_uri}/model.yaml"))
        last = len(built["conv_blocks"]) - 1
        assert last + 1 == int(r.data.params["model.conv_blocks"])
        assert built["conv_blocks"][last]["filters"] == int(r.data.params[f"model.conv_blocks.{last}.filters"])
        assert built["dense"][0]["units"] == int(r.data.params["model.dense.0.units"])
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"leaderboard.csv", "leaderboard.md", "sweep_reports"} <= artifacts
    sweep_plots = {a.path for a in client.list_artifacts(parents[0].info.run_id, "sweep_reports")}
    assert {"sweep_reports/sweep_progress.png", "sweep_reports/sweep_gap.png"} <= sweep_plots
    best = client.get_model_version_by_alias("fmnist-cnn", "best")
    for r in kids:  # the slow embeddings only where the registered model was trained
        pngs = {a.path.split("/")[-1] for a in client.list_artifacts(r.info.run_id, "reports")}
        assert {"curves.png", "confusion.png", "mistakes.png"} <= pngs
        assert ("embeddings.png" in pngs) == (r.info.run_id == best.tags["source_run"])
    assert best.tags["sweep"] == "quick" and parents[0].data.tags["best_trial_id"] == best.tags["trial_id"]
    assert load_keras("best", "fmnist-cnn").output_shape == (None, 10)
    pyfunc = mlflow.pyfunc.load_model("models:/fmnist-cnn@best")  # what `mlflow models serve` runs
    _, _, images, _ = load_arrays()  # a Fashion-MNIST test image as PNG bytes: no shared photos needed
    png = cv2.imencode(".png", images[0])[1].tobytes()
    answer = pyfunc.predict(pd.DataFrame({"image": [base64.b64encode(png).decode()]}))
    assert 0 <= int(answer["class_id"][0]) <= 9 and 0 < float(answer["confidence"][0]) <= 1


@pytest.mark.slow
def test_alias_goes_to_the_better_sweep(store):
    client = MlflowClient()
    run_sweep("sweep.name=worse", space=WORSE)
    assert client.get_model_version_by_alias("fmnist-cnn", "best").version == 1
    run_sweep("sweep.name=better")
    assert client.get_model_version_by_alias("fmnist-cnn", "best").version == 2
    run_sweep("sweep.name=worse_later", space=WORSE)
    holder = client.get_model_version_by_alias("fmnist-cnn", "best")
    assert holder.version == 2 and holder.tags["sweep"] == "better"
    assert len(client.search_model_versions("name='fmnist-cnn'")) == 3


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume(store, tmp_path):
    # rungs at 1, 2 and 4 epochs: trial 1 is killed between its first rung and its second
    cmd = [sys.executable, "-m", "fmnist.sweep", *QUICK, "data.subset=3000", "pruner.rungs=[1,2,4]", "pruner.eta=2",
           "selection.max_gap=0.2",  # tiny trials overfit by chance; this test is about resuming
           "trainer.verbose=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    deadline = time.time() + 240
    for line in proc.stdout:  # wait until trial 1 is inside its second epoch
        if "[trial 1] start" in line:
            started = True
        if "Epoch 2/4" in line and "started" in locals():
            break
        assert time.time() < deadline, "sweep never reached trial 1"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resumed" in done.stdout and "1 interrupted trial run(s) marked KILLED" in done.stdout

    client = MlflowClient()
    parents = [r for r in runs_of(client) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, "the resumed sweep reuses its parent run"
    kids = children(client, parents[0].info.run_id)
    finished = sorted(r.data.tags["trial_id"] for r in kids if r.info.status == "FINISHED")
    killed = [r.data.tags["trial_id"] for r in kids if r.info.status == "KILLED"]
    assert finished == ["0", "1", "2"], "every trial exactly once as a finished run"
    assert killed == ["1"], "the interrupted trial's run ends KILLED and the trial runs again"
    again = next(r for r in kids if r.data.tags["trial_id"] == "1" and r.info.status == "FINISHED")
    assert again.data.tags["trial_status"] in ("COMPLETED", "PRUNED") and "val_rung_0" in again.data.metrics
    # the rerun finished its rungs: as far as the pruner let it, its rung scores in the resumed oracle's state
    state = json.loads(Path(tmp_path, "sweeps", "quick", "oracle.json").read_text())["fmnist"]
    assert "1" in state["scores"]["0"] and int(again.data.metrics["rung"]) == max(
        int(r) for r, scores in state["scores"].items() if "1" in scores)
    assert (again.data.tags["trial_status"] == "COMPLETED") == (again.data.metrics["rung"] == 2)
    assert client.get_model_version_by_alias("fmnist-cnn", "best").version == 1


F, E, B = "model.conv_blocks.*.filters", "trainer.epochs", "trainer.batch_size"


@pytest.mark.parametrize("entry,message", [
    ({F: {"type": "gaussian", "values": [8]}}, f"search.{F}.type='gaussian': Input should be 'choice'"),
    ({E: {"type": "int", "min": 5, "max": 2}}, f"search.{E}: min 5 is above max 2"),
    ({"model.width": {"type": "int", "min": 1, "max": 2}}, "search.model.width: not a config path"),
    ({F: {"type": "choice"}}, f"search.{F}: type 'choice' needs a non-empty 'values' list"),
    ({E: {"type": "int", "min": 0, "max": 3}}, f"search.{E}: 0 is out of range for {E}"),
    ({E: {"type": "fixed", "value": -2}}, f"search.{E}: -2 is out of range for {E}"),
    ({B: {"type": "choice", "values": [64, 0]}}, f"search.{B}: 0 is out of range for {B}"),
    ({F: {"type": "choice", "values": [0]}}, f"search.{F}: 0 is out of range for {F}"),
    ({"model.conv_blocks": {"type": "float", "min": 1, "max": 2}}, "search.model.conv_blocks: a list's length"),
])
def test_invalid_space_is_rejected_before_training(entry, message):
    with pytest.raises(ConfigError) as e:
        validate(Config, quick_cfg(space=entry))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_cli_invalid_space_exits_2_without_a_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fmnist.sweep", *QUICK, "search.model.learning_rate.min=0.1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        "error: config: search.model.learning_rate: min 0.1 is above max 0.003"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_a_failing_trial_is_failed_and_the_sweep_goes_on(store):
    """Three blocks of valid 5x5 convs shrink 28x28 away: those trials are skipped (they never
    trained, so they take no slot of max_trials), and four two-block trials train."""
    shrinking = {"model.conv_blocks": {"type": "choice", "values": [2, 3]},
                 "model.conv_blocks.*.kernel": {"type": "fixed", "value": 5, "shared": True},
                 "model.conv_blocks.*.padding": {"type": "fixed", "value": "valid", "shared": True}}
    run_sweep("sweep.name=failing", "tuner.max_trials=4", space=shrinking)
    client = MlflowClient()
    parent = next(r for r in runs_of(client) if r.info.run_name == "failing")
    kids = children(client, parent.info.run_id)
    statuses = {r.data.params["model.conv_blocks"]: r.info.status for r in kids}
    assert statuses == {"3": "FAILED", "2": "FINISHED"}
    assert {r.data.tags["trial_status"] for r in kids if r.data.params["model.conv_blocks"] == "3"} == {"SKIPPED"}
    assert sum(r.info.status == "FINISHED" for r in kids) == 4, "skipped trials took no slot"


def test_a_quick_sweep_over_three_rungs_prunes_and_records_what_it_pruned(store):
    """Rungs at a quarter, half and one epoch: every trial gets its first look, the pruner
    stops those below the best half at a rung, and each child run says how far it went."""
    run_sweep("sweep.name=rungs", "pruner.rungs=[0.25,0.5,1]", "pruner.eta=2", "tuner.max_trials=6",
              "selection.max_gap=1.0")
    client = MlflowClient()
    parent = next(r for r in runs_of(client) if r.info.run_name == "rungs")
    kids = {r.data.tags["trial_id"]: r for r in children(client, parent.info.run_id)}
    statuses = {t: r.data.tags["trial_status"] for t, r in kids.items()}
    assert len(kids) == 6 and {"COMPLETED", "PRUNED"} == set(statuses.values())
    scores: dict[int, list[float]] = {}
    for t in sorted(kids):
        run, rung = kids[t], int(kids[t].data.metrics["rung"])
        parts = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert parts == list(range(1, [1, 2, 4][rung] + 1)), "the curve so far, one point per quarter epoch"
        assert run.data.metrics["epochs_run"] == [0.25, 0.5, 1][rung] or statuses[t] == "COMPLETED"
        assert (statuses[t] == "PRUNED") == (rung < 2) == (run.data.tags.get("pruned") == "true")
        assert run.info.status == "FINISHED" and ("test_accuracy" in run.data.metrics) == (statuses[t] == "COMPLETED")
        for k in range(rung + 1):  # ASHA's rule, replayed: at its last rung a pruned trial was below the best half
            scores.setdefault(k, []).append(value := run.data.metrics[f"val_rung_{k}"])
        if statuses[t] == "PRUNED":
            ranked = sorted(scores[rung], reverse=True)
            assert value < ranked[max(1, len(ranked) // 2) - 1]
    board = leaderboard(mlflow.get_run(parent.info.run_id))
    assert set(board["status"]) == {"COMPLETED", "PRUNED"} and board["first_val"].notna().all()
    drawn = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep_reports")}
    assert {"sweep_reports/sweep_importance.png", "sweep_reports/sweep_parallel.png"} <= drawn


def test_a_diverging_trial_fails(store):
    """A loss that is no longer finite ends the trial FAILED ("loss diverged"), not as a result."""
    cfg = validate(Config, quick_cfg())
    splits = load_splits(subset=1000, seed=0)
    poisoned = dataclasses.replace(splits, x_train=np.full_like(splits.x_train, 3e38))  # overflows: loss inf
    hypermodel, hp = SpaceHyperModel(cfg), kt.HyperParameters()
    mlflow.set_experiment("diverge")  # this store's, not one a test before left active
    with mlflow.start_run(), pytest.raises(kt.errors.FailedTrialError, match="loss diverged"):
        hypermodel.fit(hp, hypermodel.build(hp), poisoned)


@pytest.mark.slow
def test_a_retrain_within_max_gap_is_what_gets_registered(store):
    """The retrain's own gap and validation accuracy are checked too (tests/search/test_finalize.py);
    within max_gap and better than its one-epoch trial, its model is the registered one."""
    run_sweep("sweep.name=strict", "selection.retrain_epochs=3", "selection.max_gap=1.0",
              "tuner.max_trials=1")
    client = MlflowClient()
    v1 = client.get_model_version_by_alias("fmnist-cnn", "best")
    final = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id], "tags.role = 'final'")
    assert v1.tags["source_run"] == final[0].info.run_id, "a retrain within max_gap is what gets registered"


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_a_trial_too_slow_for_trial_minutes_is_skipped_a_few_batches_in(store):
    """Every trial too slow: each is skipped, so max_trials=1 does not end the search after the
    first; each setting is tried once (a space of two), then the search ends in one line naming
    the reason (endless skips: tests/search/test_oracle.py)."""
    with pytest.raises(SweepError, match=r"every trial failed, so the search stopped; the last one: too slow: "):
        sweep(validate(Config, quick_cfg(("search=none", "sweep.name=slow", "tuner.max_trials=1",
                                          "sweep.trial_minutes=0.0001"),  # small batches: enough to measure
                                         {"trainer.batch_size": {"type": "choice", "values": [16, 24]}})))
    client = MlflowClient()
    parent = next(r for r in runs_of(client) if r.info.run_name == "slow")
    kids = children(client, parent.info.run_id)
    assert len(kids) == 2 and {r.info.status for r in kids} == {"FAILED"}
    assert {r.data.tags["trial_status"] for r in kids} == {"SKIPPED"}
    assert sorted(r.data.params["trainer.batch_size"] for r in kids) == ["16", "24"], "no setting drawn twice"
    assert all(r.data.tags["trial_error"].startswith("too slow:") for r in kids)
    # the partial epoch logged a val_accuracy; the leaderboard must not rank it as a result
    assert all(math.isnan(row["val_accuracy"]) for row in leaderboard(mlflow.get_run(parent.info.run_id)).to_dict("records"))
    assert "registered_version" not in mlflow.get_run(parent.info.run_id).data.tags


@pytest.mark.slow
def test_hyperband_continues_augmented_trials_from_their_checkpoints(store):
    """Hyperband's later rounds load a trial's checkpoint into the plain network: the weights
    saved while the network trained behind its augmentation layers must be the network's."""
    run_sweep("sweep.name=bands", "tuner=hyperband", "~tuner.max_trials", "pruner=none", "tuner.max_epochs=3",
              "tuner.factor=3", "model.augment.flip=true", "model.augment.shift=0.1")
    continued = [t for t in tuner_trials("bands").values() if "tuner/trial_id" in t["hyperparameters"]["values"]]
    assert continued and all(t["status"] == "COMPLETED" for t in continued)


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_no_trial_starts_after_search_minutes(store):
    run_sweep("sweep.name=timeup", "tuner.max_trials=3", "sweep.search_minutes=0.0001")
    client = MlflowClient()
    parent = next(r for r in runs_of(client) if r.info.run_name == "timeup")
    assert [r.info.status for r in children(client, parent.info.run_id)] == ["FINISHED"]


@pytest.mark.parametrize("seconds, epochs", [(None, 24), (10.0, 24), (60.0, 15), (1000.0, 1)])
def test_the_retrain_shrinks_to_fit_retrain_minutes(seconds, epochs):
    selection = SelectionConfig(max_gap=0.03, alias="best", retrain_epochs=24, retrain_minutes=15, promote=1,
                                promote_epochs=1, promote_minutes=0, ensemble=1)
    assert selection.epochs_at(seconds) == epochs


@pytest.mark.slow
def test_the_printed_command_trains_the_best_trials_model_again(store, capsys):
    """The closing table prints, under each trial, the `python -m fmnist.train` line for its
    settings; run as printed, it builds the very model the trial built."""
    run_sweep("sweep.name=repro")
    printed = next(line.strip() for line in capsys.readouterr().out.splitlines()
                   if line.strip().startswith("python -m fmnist.train "))
    client = MlflowClient()
    parent = next(r for r in runs_of(client) if r.info.run_name == "repro")
    best = leaderboard(parent).iloc[0]
    assert printed == best["command"], "the top row's command is the best trial's"
    argv = shlex.split(printed)
    assert subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True).returncode == 0
    rerun = next(r for r in runs_of(client) if r.info.run_name == "quick" and "mlflow.parentRunId" not in r.data.tags)
    model_yaml = lambda run_id: yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/model.yaml"))  # noqa: E731
    assert model_yaml(rerun.info.run_id) == model_yaml(best["run_id"])


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_a_second_process_on_a_held_sweep_name_is_one_line_and_deletes_nothing(tmp_path):
    """While one process holds sweep `held` (this one, by the sweep's own lock), a fresh start
    of the same name is turned away before keras-tuner could clear the first one's state."""
    state = tmp_path / "sweeps" / "held"
    (state / "trial_0").mkdir(parents=True)
    (state / MARKER).write_text('{"run_id": "first"}')
    (state / "trial_0" / "trial.json").write_text("{}")
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    with locked(tmp_path / "sweeps", "held"):
        out = subprocess.run([sys.executable, "-m", "fmnist.sweep", *QUICK, "sweep.name=held", "sweep.fresh=true"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        f"error: config: sweep.name='held': process {os.getpid()} is running this sweep (sweeps/held); "
        "wait for it to end or choose another sweep.name"]
    assert {p: p.read_bytes() for p in state.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "mlflow.db").exists()


def test_a_marker_write_cut_short_leaves_the_old_marker(tmp_path, monkeypatch):
    """A process killed after writing the new marker's text but before it takes the marker's
    place (os.replace fails here in its stead) leaves the old marker whole, and no stray file."""
    marker = tmp_path / MARKER
    with atomic(marker, "w") as f:
        f.write('{"run_id": "old"}')

    def killed(*_):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError), atomic(marker, "w") as f:
        f.write('{"run_id": "new", "fingerprint": "..."}')
    assert json.loads(marker.read_text()) == {"run_id": "old"}
    assert [p.name for p in tmp_path.iterdir()] == [MARKER]


@pytest.mark.slow
def test_the_holder_is_scored_on_the_challengers_validation_images(store):
    """The holder's val_accuracy tag says 0.99, but it is an untrained model: measured on the
    sweep's own validation images it scores about 0.1, and the sweep's model (0.3-0.6 after
    one short epoch) takes the alias."""
    client = MlflowClient()
    cfg = validate(Config, quick_cfg())
    mlflow.set_experiment("holder")  # this store's, not one a test before left active
    with mlflow.start_run(run_name="inflated"):
        uri = log_photo_model(build_model(cfg.model))
    holder = mlflow.register_model(uri, "fmnist-cnn", tags={"val_accuracy": "0.99"}).version
    client.set_registered_model_alias("fmnist-cnn", "best", holder)
    run_sweep("sweep.name=honest", "tuner.max_trials=1", "selection.max_gap=1.0")
    best = client.get_model_version_by_alias("fmnist-cnn", "best")
    assert best.tags["sweep"] == "honest"
    assert json.loads(best.tags["compared_with"])[str(holder)] < float(best.tags["val_accuracy"]) < 0.99


@pytest.mark.parametrize("b_on_a_images", [0.88, 0.7])
def test_two_sweeps_closing_at_once_leave_the_better_holding_the_alias(store, tmp_path, b_on_a_images):
    """Sweep A (0.8 on its images) measures holder v1 (before registering v3); meanwhile sweep B registers
    v2 and takes the alias. A reads the alias again, measures v2 on A's images, and the better one holds it."""
    client = MlflowClient()

    def register(model: str, score: float, holder_score) -> tuple:  # no model behind the URI: scores are given
        return register_if_better((tmp_path / model).as_uri(), "fmnist-cnn", "best", score, {}, holder_score)

    register("first", 0.5, lambda version: None)
    a_sees = {"1": 0.5, "2": b_on_a_images}

    def a_scores(version: str) -> float:
        if str(version) == "1":  # B closes while A measures v1
            assert register("b", 0.9, lambda version: 0.5)[1]
        return a_sees[str(version)]

    version, moved, held = register("a", 0.8, a_scores)
    better = "a" if 0.8 > b_on_a_images else "b"
    assert str(client.get_model_version_by_alias("fmnist-cnn", "best").version) == {"a": "3", "b": "2"}[better]
    assert (moved, held) == (better == "a", b_on_a_images)
    assert json.loads(client.get_model_version("fmnist-cnn", "3").tags["compared_with"]) == a_sees


def test_a_holder_that_cannot_be_measured_is_not_comparable(store, tmp_path, capsys):
    """A holder whose files are gone, or that takes other inputs than Fashion-MNIST's, cannot be
    measured on the sweep's images: a note, and the alias moves (None)."""
    mlflow.set_experiment("holder")
    mlflow.register_model((tmp_path / "gone").as_uri(), "fmnist-cnn")
    with mlflow.start_run():
        colour = log_photo_model(build_model(validate(Config, quick_cfg()).model, input_shape=(32, 32, 3)))
    mlflow.register_model(colour, "fmnist-cnn")
    score = keras_holder_score("fmnist-cnn", np.zeros((4, 28, 28, 1), np.float32), np.zeros(4, np.int64))
    assert (score("1"), score("2")) == (None, None)
    notes = capsys.readouterr().err.splitlines()
    assert [line.endswith("not comparable, the alias moves") for line in notes if line.startswith("note:")] == [True] * 2


@pytest.mark.slow
def test_resuming_with_another_config_is_one_line_and_keeps_the_sweep(store, tmp_path):
    """The same sweep.name with another seed: the state on disk belongs to another sweep."""
    run_sweep("sweep.name=same")
    cmd = [sys.executable, "-m", "fmnist.sweep", *QUICK, "sweep.name=same", "seed=7"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        f"error: config: sweep.name='same': {Path('sweeps') / 'same'} holds a sweep with a different config; "
        "rerun with sweep.fresh=true or choose another sweep.name"]
    assert (tmp_path / "sweeps" / "same" / "mlflow_parent_run.json").exists(), "nothing deleted"
