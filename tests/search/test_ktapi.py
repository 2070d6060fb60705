"""fmnist/search/ktapi.py against the installed keras-tuner: real oracles and tuners, a tiny search
space, no training (seconds). A failure here means a keras-tuner upgrade broke a private name or
behaviour the project relies on; each message says what, and that ktapi.py is the place to fix."""

from __future__ import annotations

import io
from concurrent import futures
from contextlib import redirect_stdout

import grpc
import keras_tuner as kt
import pytest

from fmnist.search import ktapi  # an ImportError here already says what changed

OBJECTIVE = kt.Objective("score", "max")


def changed(what: str) -> str:
    return f"keras-tuner {kt.__version__} changed {what}; update fmnist/search/ktapi.py"


def space(hp: kt.HyperParameters) -> None:
    """A tiny search space with one conditional hyperparameter (the kind that crosses gRPC)."""
    hp.Float("x", 0.0, 1.0)
    hp.Choice("kind", ["a", "b"])
    with hp.conditional_scope("kind", ["a"]):
        hp.Int("n", 1, 3)


def random_search(tmp_path, max_trials: int = 3) -> kt.Oracle:
    return kt.RandomSearch(hypermodel=space, objective=OBJECTIVE, max_trials=max_trials, seed=1,
                           directory=str(tmp_path), project_name="random").oracle


def hyperband(tmp_path, **kwargs) -> kt.Tuner:
    return kt.Hyperband(hypermodel=space, objective=OBJECTIVE, seed=1, directory=str(tmp_path),
                        project_name="hyperband", **kwargs)


def finish(oracle: kt.Oracle, trial, score: float) -> None:
    """What a tuner does when a trial has run: report its metric, end it COMPLETED."""
    oracle.update_trial(trial.trial_id, {"score": score})
    trial.status = ktapi.TrialStatus.COMPLETED
    oracle.end_trial(trial)


def test_private_names_exist():
    service, grpc_service = ktapi.protos.get_service(), ktapi.protos.get_service_grpc()
    for name in ("CreateTrialRequest", "CreateTrialResponse", "EndTrialRequest", "UpdateTrialRequest"):
        assert hasattr(service, name), changed(f"its gRPC messages (no {name} in protos.get_service())")
    assert hasattr(grpc_service, "add_OracleServicer_to_server"), changed("its gRPC service registration")
    assert issubclass(ktapi.OracleServicer, grpc_service.OracleServicer), changed("the chief's OracleServicer")
    for status in ("RUNNING", "IDLE", "STOPPED", "COMPLETED"):
        assert getattr(ktapi.TrialStatus, status, None) == status, changed(f"TrialStatus.{status}")


def test_servicer_speaks_the_chief_protocol(tmp_path):
    """distributed.Servicer wraps CreateTrial/EndTrial, rebuilds replies from protos and reads
    `oracle` and `stop_triggered`: the chief's side of one trial, as a worker drives it."""
    oracle = random_search(tmp_path, max_trials=1)
    servicer = ktapi.OracleServicer(oracle)
    assert servicer.oracle is oracle, changed("OracleServicer(oracle) (no .oracle)")
    service = ktapi.protos.get_service()

    reply = servicer.CreateTrial(service.CreateTrialRequest(tuner_id="worker-a"), None)
    trial = ktapi.Trial.from_proto(reply.trial)
    assert trial.status == ktapi.TrialStatus.RUNNING, changed("CreateTrial's reply (no RUNNING trial)")
    assert oracle.ongoing_trials["worker-a"].trial_id == trial.trial_id, changed("Oracle.ongoing_trials")
    assert not servicer.stop_triggered, changed("OracleServicer.stop_triggered")

    servicer.UpdateTrial(service.UpdateTrialRequest(trial_id=trial.trial_id, metrics={"score": 0.5}), None)
    trial.status = ktapi.TrialStatus.COMPLETED
    servicer.EndTrial(service.EndTrialRequest(trial=trial.to_proto()), None)
    assert not oracle.ongoing_trials, changed("EndTrial (the trial is still ongoing)")

    reply = servicer.CreateTrial(service.CreateTrialRequest(tuner_id="worker-a"), None)
    stopped = ktapi.Trial.from_proto(reply.trial)
    assert stopped.status == ktapi.TrialStatus.STOPPED, changed("CreateTrial past max_trials (not STOPPED)")
    assert servicer.stop_triggered, changed("OracleServicer.stop_triggered (not set on STOPPED)")

    stopped.status = ktapi.TrialStatus.IDLE  # how distributed.Servicer keeps a worker waiting
    idle = service.CreateTrialResponse(trial=stopped.to_proto())
    assert ktapi.Trial.from_proto(idle.trial).status == ktapi.TrialStatus.IDLE, changed("Trial's proto round trip")


def test_requeue_hands_the_same_trial_to_the_next_worker(tmp_path):
    """A dead worker's trial (taken off `ongoing_trials`, as distributed.requeue does) goes to
    whichever tuner asks next."""
    oracle = random_search(tmp_path)
    trial = oracle.create_trial("worker-a")
    assert oracle.ongoing_trials.pop("worker-a", None) is trial, changed("Oracle.ongoing_trials (tuner id -> Trial)")
    assert ktapi.retry_queue(oracle) == [], changed("the oracle's retry queue (not empty at start)")

    ktapi.requeue(oracle, trial.trial_id)
    assert ktapi.retry_queue(oracle) == [trial.trial_id], changed("the oracle's retry queue (_retry_queue)")

    again = oracle.create_trial("worker-b")
    assert again.trial_id == trial.trial_id, changed("create_trial (it no longer takes the retry queue first)")
    assert again.status == ktapi.TrialStatus.RUNNING, changed("create_trial of a retried trial (not RUNNING)")
    assert oracle.ongoing_trials["worker-b"] is again, changed("Oracle.ongoing_trials of a retried trial")
    assert ktapi.retry_queue(oracle) == [], changed("create_trial (a retried trial stays queued)")
    assert len(oracle.trials) == 1, changed("create_trial (a retried trial counts as a new one)")


@pytest.mark.parametrize("max_epochs,factor,iterations", [(9, 3, 1), (4, 2, 2)])
def test_hyperband_trials_is_what_hyperband_runs(tmp_path, max_epochs, factor, iterations):
    """Run a Hyperband oracle to its end (every trial completed at once) and count its trials."""
    oracle = hyperband(tmp_path, max_epochs=max_epochs, factor=factor, hyperband_iterations=iterations).oracle
    planned = ktapi.hyperband_trials(oracle)
    assert isinstance(planned, int), changed(f"Hyperband's schedule helpers (got {planned!r})")

    ran = 0
    for step in range(1000):
        trial = oracle.create_trial("tuner0")
        if trial.status == ktapi.TrialStatus.STOPPED:
            break
        assert trial.status == ktapi.TrialStatus.RUNNING, changed(f"Hyperband's create_trial ({trial.status})")
        ran += 1
        finish(oracle, trial, score=step % 7 / 7)
    else:
        pytest.fail(changed("Hyperband's end (no STOPPED after 1000 trials)"))
    assert ran == planned, changed(f"Hyperband's bracket schedule: ran {ran} trials, _get_* helpers say {planned}")


def test_local_oracle_reaches_a_workers_own_oracle(tmp_path, monkeypatch):
    """On a worker (KERASTUNER_* set, as distributed.worker_env does) a tuner's oracle is a proxy to
    the chief; local_oracle gives the worker's own Hyperband oracle, schedule included."""
    chief_side = hyperband(tmp_path / "chief", max_epochs=9, factor=3).oracle
    assert ktapi.local_oracle(chief_side) is chief_side, changed("local_oracle on a plain oracle")

    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker-0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")  # never dialled: the proxy connects lazily
    proxy = hyperband(tmp_path / "worker", max_epochs=9, factor=3).oracle
    assert not isinstance(proxy, kt.oracles.HyperbandOracle), changed("a worker's oracle (no longer a proxy)")
    own = ktapi.local_oracle(proxy)
    assert isinstance(own, kt.oracles.HyperbandOracle), changed(f"the worker's proxy oracle (no _oracle: {own!r})")
    assert ktapi.hyperband_trials(own) == ktapi.hyperband_trials(chief_side), changed("the worker's own oracle")


def serve(oracle: kt.Oracle) -> tuple[grpc.Server, int]:
    """keras-tuner's chief servicer for `oracle` on a free loopback port."""
    server = grpc.server(futures.ThreadPoolExecutor(1))
    ktapi.protos.get_service_grpc().add_OracleServicer_to_server(ktapi.OracleServicer(oracle), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_use_channel_sends_a_workers_calls_over_the_given_channel(tmp_path, monkeypatch):
    """distributed.Heartbeat hands a worker's proxy a channel that adds the sweep's token: the
    proxy's calls must go over it, not over the plain channel keras-tuner dialled itself (here
    to a decoy chief, so that a stub keras-tuner renamed fails at once instead of hanging)."""
    chief_side, decoy_side = random_search(tmp_path / "chief"), random_search(tmp_path / "decoy")
    (chief, port), (decoy, decoy_port) = serve(chief_side), serve(decoy_side)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker-0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(decoy_port))
    proxy = kt.RandomSearch(hypermodel=space, objective=OBJECTIVE, max_trials=3, directory=str(tmp_path / "worker"),
                            project_name="random").oracle
    try:
        ktapi.use_channel(proxy, grpc.insecure_channel(f"127.0.0.1:{port}"))
        trial = proxy.create_trial("worker-0")
    finally:
        chief.stop(None), decoy.stop(None)
    assert not decoy_side.ongoing_trials, changed("OracleClient.stub (its calls do not go through it)")
    assert chief_side.ongoing_trials["worker-0"].trial_id == trial.trial_id


def test_conditional_hyperparameters_cross_grpc_silently(tmp_path):
    """The chief serializes the space and every trial (to_proto) for each request; keras-tuner
    1.4.8 would print each conditional hyperparameter's parent value."""
    ktapi.silence_condition_print()  # idempotent: already done at import
    oracle = random_search(tmp_path)
    trial = oracle.create_trial("tuner0")
    hps = oracle.get_space()
    assert any(hp.conditions for hp in hps.space), "test space lost its conditional hyperparameter"

    out = io.StringIO()
    with redirect_stdout(out):
        servicer = ktapi.OracleServicer(oracle)
        servicer.GetSpace(ktapi.protos.get_service().GetSpaceRequest(), None)
        kt.HyperParameters.from_proto(hps.to_proto())
        ktapi.Trial.from_proto(trial.to_proto())
    assert out.getvalue() == "", changed(f"where conditions print while serialized (printed {out.getvalue()!r})")


def test_tried_and_random_values_read_the_oracles_record_of_values(tmp_path):
    oracle = random_search(tmp_path, max_trials=5)
    trial = oracle.create_trial("t")
    assert ktapi.tried(oracle, trial.hyperparameters.values), changed("how an oracle records tried values")
    fresh = ktapi.random_values(oracle)
    assert fresh is not None and not ktapi.tried(oracle, fresh), changed("the oracle's random draws")
