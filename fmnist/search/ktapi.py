"""The one module that touches keras-tuner's private API (`keras_tuner.src`, underscored names).

Checked against keras-tuner 1.4.8 (the installed version when this was written; pyproject
allows >=1.4.7,<1.5, and 1.4.7 was not at hand to check). tests/search/test_ktapi.py exercises every
name here against whatever keras-tuner is installed and fails with "keras-tuner X changed ...;
update fmnist/search/ktapi.py" when an upgrade breaks one; fix it here, nowhere else.

Not here, because keras-tuner treats them as public: `kt.Oracle`, `kt.HyperParameters`,
`kt.synchronized`, `kt.oracles.HyperbandOracle`, and an oracle's `ongoing_trials` (tuner id ->
Trial) and `tuner_ids` (set of tuner ids), plain attributes set in `Oracle.__init__` that
keras-tuner's own oracles (Hyperband, Bayesian, GridSearch) and its gRPC chief read.
"""

from __future__ import annotations

import keras_tuner as kt


def changed(what: str) -> str:
    """The message for a keras-tuner upgrade that broke something this module relies on."""
    return f"keras-tuner {kt.__version__} changed {what}; update fmnist/search/ktapi.py"


try:
    # protos: keras-tuner's gRPC messages (`get_service()`) and service (`get_service_grpc()`:
    # the servicer base, `add_OracleServicer_to_server`). OracleServicer: the chief's servicer,
    # `OracleServicer(oracle)` with `.oracle` and `.stop_triggered` (set once it has answered
    # STOPPED), subclassed by fmnist.search.distributed.Servicer. Trial/TrialStatus: a trial as it
    # crosses gRPC (`Trial.from_proto`, `trial.to_proto()`) and its states.
    from keras_tuner.src import config as _config
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import conditions as _conditions
    from keras_tuner.src.engine.trial import Trial, TrialStatus
except ImportError as e:  # a loud, actionable message for the chief and the tests alike
    raise ImportError(changed(f"its private modules ({e})")) from e

__all__ = ["OracleServicer", "Trial", "TrialStatus", "changed", "hyperband_trials", "local_oracle", "protos",
           "quiet_failed_trials", "random_values", "requeue", "retry_queue", "silence_condition_print", "tried",
           "use_channel"]


def _no_print(*args, **kwargs) -> None:
    pass


def silence_condition_print() -> None:
    """keras-tuner 1.4.8 prints the value of every conditional hyperparameter it serializes for
    gRPC (a stray `print` in `conditions.Parent.to_proto`), so a chief spams its log with one line
    per conditional hyperparameter per request. Shadow `print` in that one module only.
    Idempotent; done when this module is imported."""
    _conditions.print = _no_print


silence_condition_print()


def quiet_failed_trials() -> None:
    """keras-tuner prints the whole traceback of every failed trial (its `config.DEBUG` is on by
    default); fmnist prints one `[trial N] FAILED <reason>` line instead, and the traceback stays
    in the trial's `message` (its trial.json). Done when this module is imported."""
    if not hasattr(_config, "DEBUG"):
        raise ImportError(changed("its config module (no DEBUG)"))
    _config.DEBUG = False


quiet_failed_trials()


def retry_queue(oracle: kt.Oracle) -> list[str]:
    """The trial ids waiting to be handed out again (a copy; the oracle's `_retry_queue` is
    private). The chief is not done while a dead worker's trial waits here."""
    return list(oracle._retry_queue)


def requeue(oracle: kt.Oracle, trial_id: str) -> None:
    """Put `trial_id` back on the oracle's retry queue: the next `create_trial`, from any tuner
    id, hands out this same trial again (keras-tuner has no public call for it: it only retries
    trials that end INVALID, and a dead worker's trial never ends). The caller takes the trial out
    of `oracle.ongoing_trials` and holds the oracle's lock (`kt.synchronized`)."""
    oracle._retry_queue.append(trial_id)


def hyperband_trials(oracle: kt.oracles.HyperbandOracle) -> int:
    """The number of trials a Hyperband search runs: its bracket schedule (every round of every
    bracket, times `hyperband_iterations`). Hyperband has no `max_trials`, and only its private
    helpers (`_get_num_brackets`, `_get_num_rounds`, `_get_size`) know the schedule."""
    o = oracle
    per_iteration = sum(o._get_size(b, r) for b in range(o._get_num_brackets()) for r in range(o._get_num_rounds(b)))
    if o.hyperband_iterations == float("inf"):  # keras-tuner's reading of hyperband_iterations=0/None
        raise ValueError("hyperband_iterations is unbounded: the search has no planned number of trials")
    return o.hyperband_iterations * per_iteration


def local_oracle(oracle) -> kt.Oracle:
    """The oracle object itself. On a distributed worker a tuner's `oracle` is keras-tuner's
    `OracleClient`, which forwards calls to the chief and keeps the worker's own copy of the
    oracle (same class and settings, e.g. Hyperband's schedule) in its private `_oracle`; anywhere
    else `oracle` is returned as is."""
    return getattr(oracle, "_oracle", oracle)


def use_channel(client, channel) -> None:
    """Send a worker's calls to the chief over `channel` (one that adds the sweep's token and
    the worker's identity to each call). keras-tuner's `OracleClient` dials its own plain
    channel in `__init__` and calls its `stub` attribute, with no hook for call metadata; its
    channel connects lazily, so replacing the stub before the first call leaves it unused."""
    client.stub = protos.get_service_grpc().OracleStub(channel)


def tried(oracle: kt.Oracle, values: dict) -> bool:
    """Whether a trial with these values was already created (the oracle hashes the values of
    every trial it hands out into its private `_tried_so_far`). The random oracle never repeats
    one; the Bayesian oracle's model can propose one again."""
    return oracle._compute_values_hash(values) in oracle._tried_so_far


def random_values(oracle: kt.Oracle) -> dict | None:
    """Random values no trial has had yet, from the oracle's own seeded draws; None when its
    private `_random_values` gives up (the space is used up)."""
    return oracle._random_values()
