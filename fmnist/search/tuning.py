"""keras-tuner glue: the hypermodel every kind of sweep builds its trials with (a trial is a
config: the base config with the space's values set), and tuners whose trials are nested
MLflow runs.

Each trial's child run is opened in `on_trial_begin` and closed in `on_trial_end`, the
two hooks keras-tuner calls around every trial, whatever the tuner. Selection only ever
sees `val_accuracy`; the test accuracy a trial logs is for the record.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Sequence

import keras
import keras_tuner as kt
import mlflow

from fmnist.config import Config
from fmnist.config.loading import checked
from fmnist.config.paths import EACH
from fmnist.search import ktapi
from fmnist.search.leaderboard import close_interrupted
from fmnist.search.oracle import NOT_TRAINED, Scheduled, skipped_reason
from fmnist.search.pruning import make_pruner
from fmnist.search.seeding import Seeded
from fmnist.search.space import command, params, trial_config
from fmnist.training.callbacks import Pace, Rungs

OBJECTIVE = kt.Objective("val_accuracy", direction="max")


class ConfigHyperModel(kt.HyperModel):
    """A hypermodel whose trial is the base config with the space's values set; each kind of
    sweep (fmnist/kinds/) builds and trains its own models from it. keras-tuner builds it
    several times to discover the space (from `declare_hyperparameters` until the search
    begins): then values are only declared, no model is built (`configure` answers None), and
    a combination the config rejects ends nothing; in a trial it fails the trial. `program`:
    the command whose line trains a trial's settings again (`python -m fmnist.<program>`).
    `minutes` (sweep trials): a run projected to take longer is stopped and failed."""

    discovering = False

    def __init__(self, cfg: Config, name: str, program: str, minutes: float = 0, pruned: bool = False) -> None:
        """`pruned`: trials train through the pruner's rungs (cfg.pruner), reporting at each
        (`reporter`, which the tuner sets for each trial) and stopping when told."""
        super().__init__(name=name)
        self.cfg, self.program, self.minutes, self.trial = cfg, program, minutes, None
        self.pruned = pruned and cfg.pruner.active
        self.reporter: Callable[[int, float], bool] = lambda step, value: True
        self.outcome: dict[str, Any] = {}  # how the last trial ended early, for its run's tags

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        self.discovering = True

    def configure(self, hp: kt.HyperParameters) -> Config | None:
        """The trial's config, computed once per trial (`fit` logs it with the params)."""
        try:
            self.trial = trial_config(hp, self.cfg, self.implied)
        except kt.errors.FailedTrialError:
            if not self.discovering:
                raise
        if self.pruned and self.trial is not None:  # the last rung is the trial's length, as its command says
            trainer = self.trial.trainer.model_copy(update={"epochs": round(self.cfg.pruner.rungs[-1])})
            self.trial = self.trial.model_copy(update={"trainer": trainer})
        return None if self.discovering else self.trial

    def implied(self, tree: dict[str, Any]) -> None:
        """What a trial's values imply elsewhere in its config tree, set before it is validated
        (nothing, unless a kind says otherwise)."""

    def log_trial(self, hp: kt.HyperParameters, trial: Config) -> None:
        """A trial's params at their config paths, the command that trains them again, and what
        they expand to: the trial's model.yaml and whole config.yaml."""
        mlflow.log_params(params(hp.values, trial))
        mlflow.set_tag("command", command(trial, plain_config(), self.program))
        mlflow.log_dict(trial.model.model_dump(), "model.yaml")
        mlflow.log_dict(trial.model_dump(), "config.yaml")

    def pace(self, epochs: int, rungs: list[int] | None = None) -> Pace | None:
        """The callback that stops a run of `epochs` projected to take longer than `minutes`
        (with `rungs`, caps it at the last rung it can reach in time)."""
        return Pace(self.minutes, epochs, rungs=rungs) if self.minutes else None

    def check(self, losses: list[float], pace: Pace | None) -> None:
        """A trial whose training diverged, or was stopped as too slow, fails (before its results
        would be logged as a finished trial's)."""
        if not all(math.isfinite(v) for v in losses):
            raise kt.errors.FailedTrialError("loss diverged (not finite)")
        if pace and pace.projected:
            raise kt.errors.FailedTrialError(f"{NOT_TRAINED}too slow: {pace.projected / 60:.1f} min projected, "
                                             f"over sweep.trial_minutes={self.minutes:g}")

    def rungs(self, x_val, y_val, pace: Pace | None, x_sample) -> Rungs | None:
        """The callback that reports a pruned trial's rungs (None when trials are not pruned)."""
        if not self.pruned:
            return None
        return Rungs(x_val, y_val, self.cfg.pruner.rung_steps, self.reporter, pace, x_sample=x_sample)

    def stopped_early(self, rungs: Rungs | None, steps_run: int, seconds: float) -> dict[str, float] | None:
        """A trial stopped at a rung (pruned, or too slow for the next): its record (tags `pruned`,
        `pruned_by`; metrics at the rung where it stopped) and the result the tuner gets; None
        for a trial that reached its last rung (or was not pruned at all)."""
        if rungs is None or not (rungs.pruned or rungs.capped):
            return None
        self.outcome = {"status": "PRUNED", "pruned_by": "rung" if rungs.pruned else "time"}
        epochs = steps_run / self.cfg.pruner.parts
        mlflow.set_tags({"pruned": "true", "pruned_by": self.outcome["pruned_by"]})
        mlflow.log_metrics({"val_accuracy": rungs.value, "epochs_run": epochs, "rung": rungs.reached,
                            "epoch_seconds": seconds / max(epochs, 1e-9)}, step=steps_run)
        return {"val_accuracy": rungs.value}


@functools.cache
def plain_config() -> Config:
    """The config with no overrides: what a reproducing command starts from (train and
    finetune compose the same config)."""
    return checked("train", [])


class Tracked:
    """Mixin for any keras-tuner Tuner: one MLflow child run of `parent_id` and two progress
    lines per trial, in a single process or on a distributed sweep's worker alike."""

    run_id: str | None = None
    _trial_start: float

    def __init__(self, *args: Any, sweep_cfg: Config, parent_id: str, **kwargs: Any) -> None:
        """`sweep_cfg`: the sweep's config (its seed, name and time limit); `parent_id`: the
        MLflow run the trials log under. The rest is the keras-tuner tuner's."""
        self.sweep_cfg, self.parent_id, self.started = sweep_cfg, parent_id, time.perf_counter()
        super().__init__(*args, **kwargs)

    def on_search_begin(self) -> None:
        super().on_search_begin()
        self.hypermodel.discovering = False  # the space is known: builds from here on are trials

    def on_trial_begin(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_begin(trial)
        keras.utils.set_random_seed(self.sweep_cfg.seed + int(trial.trial_id))
        client = mlflow.MlflowClient()
        parent = client.get_run(self.parent_id)
        # The oracle hands a trial to one worker at a time: a run of it still RUNNING is a dead worker's.
        close_interrupted(client, parent, trial_id=trial.trial_id)
        # The parent's experiment, named: two workers creating the experiment at once can leave
        # one of them with MLflow's Default experiment active.
        self.run_id = mlflow.start_run(run_name=f"trial-{trial.trial_id}", nested=True, parent_run_id=self.parent_id,
                                       experiment_id=parent.info.experiment_id,
                                       tags={"trial_id": trial.trial_id, "sweep": self.sweep_cfg.sweep.name,
                                             "tuner_id": self.tuner_id}).info.run_id
        self._trial_start = time.perf_counter()
        self.hypermodel.outcome = {}
        self.hypermodel.reporter = functools.partial(self._report, trial.trial_id)
        print(f"[trial {self._position(trial)}] start  {format_hp(trial.hyperparameters.values)}", flush=True)

    def _report(self, trial_id: str, step: int, value: float) -> bool:
        """A rung's validation accuracy to the oracle (over gRPC on a worker), logged as
        `val_rung_<k>`; False: the pruner stopped the trial there."""
        rung = self.sweep_cfg.pruner.rung_steps.index(step)
        mlflow.log_metric(f"val_rung_{rung}", value)
        answer = self.oracle.update_trial(trial_id, {OBJECTIVE.name: value}, step=step)
        return answer.status != kt.engine.trial.TrialStatus.STOPPED

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        ok = trial.status == kt.engine.trial.TrialStatus.COMPLETED
        status = self.hypermodel.outcome.get("status") if ok else "SKIPPED" if skipped_reason(trial.message) else None
        mlflow.set_tag("trial_status", status or trial.status)
        if not ok:  # a trial that failed before `fit` logged its params: the values as the tuner named them
            mlflow.log_params({k: v for k, v in trial.hyperparameters.values.items() if EACH not in k and "/" not in k})
        if not ok and trial.message:
            mlflow.set_tag("trial_error", failure(trial)[:500])
        mlflow.end_run("FINISHED" if ok else "FAILED")
        super().on_trial_end(trial)
        print(self._end_line(trial, ok, status), flush=True)
        self.run_id = None
        self._stop_if_out_of_time()

    def _stop_if_out_of_time(self) -> None:
        """Past `sweep.search_minutes` no trial starts: keras-tuner stops creating trials once
        it has max_trials of them, so max_trials becomes the count so far. The oracle decides,
        so on a distributed sweep (where a worker's oracle is remote) the limit does not apply."""
        limit, trials = self.sweep_cfg.sweep.search_minutes, getattr(self.oracle, "trials", None)
        if limit and trials is not None and time.perf_counter() - self.started > limit * 60 \
                and self._planned() > len(trials):
            print(f"search time is up (sweep.search_minutes={limit}): no more trials", flush=True)
            self.oracle.max_trials = len(trials)

    def _planned(self) -> int | None:
        """Trials the search will run: max_trials, or the bracket schedule of Hyperband (a
        worker reads it from its copy of the oracle, behind the remote one)."""
        o = ktapi.local_oracle(self.oracle)
        if isinstance(o, kt.oracles.HyperbandOracle) and not o.max_trials:
            return ktapi.hyperband_trials(o)
        return o.max_trials

    def _position(self, trial: kt.engine.trial.Trial) -> str:
        """keras-tuner's trial id (as in MLflow and the leaderboard) and k of n (n: the ceiling,
        where the time limit does not end the search first)."""
        if self.sweep_cfg.sweep.search_minutes:  # time is the budget: max_trials is only a ceiling
            return trial.trial_id
        return f"{trial.trial_id}, {int(trial.trial_id) + 1} of {self._planned() or '?'}"

    def _eta(self) -> str:
        """Time left, from the oracle's count of ended trials; a worker's oracle is remote: none."""
        trials = getattr(self.oracle, "trials", None)
        if trials is None:
            return f"{self.tuner_id}"
        elapsed = time.perf_counter() - self.started
        done = sum(t.status in ("COMPLETED", "FAILED") for t in trials.values())
        left, per_trial = max(0, (self._planned() or done) - done), elapsed / max(done, 1)
        seconds = per_trial * left
        if self.sweep_cfg.sweep.search_minutes:  # the time limit ends the search first
            seconds = min(seconds, max(0.0, self.sweep_cfg.sweep.search_minutes * 60 - elapsed) + per_trial)
        eta = f"~{seconds / 60:.0f} min of search left" if left else "last trial"
        return f"elapsed {elapsed / 60:.1f} min, {eta}"

    def _end_line(self, trial: kt.engine.trial.Trial, ok: bool, status: str | None) -> str:
        took = time.perf_counter() - self._trial_start
        if status == "SKIPPED":
            reason = failure(trial)[:200]
            return f"[trial {self._position(trial)}] skipped {reason}  ({took:.0f} s; not counted; {self._eta()})"
        if not ok:
            return f"[trial {self._position(trial)}] FAILED {failure(trial)[:200]}  ({took:.0f} s; {self._eta()})"
        m = mlflow.get_run(self.run_id).data.metrics
        if status == "PRUNED":
            why = self.hypermodel.outcome.get("pruned_by", "rung")
            return (f"[trial {self._position(trial)}] pruned at {m['epochs_run']:g} epochs "
                    f"({'below the rung' if why == 'rung' else 'too slow for the next rung'}): "
                    f"val {m['val_accuracy']:.4f}  {took:.0f} s  ({self._eta()})")
        return (f"[trial {self._position(trial)}] done   val {m['val_accuracy']:.4f}  gap {m['overfit_gap']:+.4f}  "
                f"{took:.0f} s  ({self._eta()})")


def failure(trial: kt.engine.trial.Trial) -> str:
    """The last line of a failed trial's traceback, less the exception's module path when
    the failure is one of ours (FailedTrialError: the reason is the message)."""
    last = ((trial.message or "").strip().splitlines() or ["failed"])[-1]
    return last.split("FailedTrialError: ", 1)[-1].removeprefix(NOT_TRAINED)


def format_hp(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in values.items() if not k.startswith("tuner/"))


class TrackedTuner(Tracked, kt.Tuner):
    pass


class TrackedHyperband(Tracked, kt.Hyperband):
    pass


class SeededRandomOracle(Scheduled, Seeded, kt.oracles.RandomSearchOracle):
    pass


class SeededBayesianOracle(Scheduled, Seeded, kt.oracles.BayesianOptimizationOracle):
    pass


def make_tuner(cfg: Config, hypermodel: ConfigHyperModel, parent_id: str, directory: str,
               project: str | None = None, first: Sequence[dict[str, Any]] = ()) -> kt.Tuner:
    """The configured tuner of `hypermodel`'s trials (the sweep's kind made it), its state under
    `directory/project` (sweep.name by default: what makes resume work), reloaded where the
    folder holds one; never keras-tuner's overwrite, which deletes the whole folder (a fresh
    start clears only the sweep's files: fmnist/search/state.py). Its trials log as children
    of the MLflow run `parent_id`. `first`: the values of the first trials
    (fmnist.search.seeding), then the oracle's own choices, all drawn from `seed`, so the
    same command tries the same settings in the same order."""
    t = cfg.tuner
    failures = max(3, getattr(t, "max_trials", 3))
    common = dict(hypermodel=hypermodel, executions_per_trial=t.executions_per_trial, directory=directory,
                  project_name=project or cfg.sweep.name, overwrite=False, sweep_cfg=cfg, parent_id=parent_id)
    if t.kind == "hyperband":
        return TrackedHyperband(objective=OBJECTIVE, max_epochs=t.max_epochs, factor=t.factor, seed=cfg.seed,
                                hyperband_iterations=t.iterations, max_consecutive_failed_trials=failures, **common)
    scheduled = dict(seed=cfg.seed, failures=failures, first=first, pruner=make_pruner(cfg.pruner))
    oracle = (SeededRandomOracle(OBJECTIVE, t.max_trials, **scheduled) if t.kind == "random" else
              SeededBayesianOracle(OBJECTIVE, t.max_trials, num_initial_points=t.initial_points, **scheduled))
    return TrackedTuner(oracle=oracle, **common)
