"""What every sweep's oracle adds to keras-tuner's: the budget is time, not slots, and trials
stop early at rungs.

- A trial that ends before it trained (too slow even for the first rung, a config the space
  cannot build: `NOT_TRAINED` in its message) is skipped: it does not count against
  `tuner.max_trials`, which is a ceiling, nor against the failures in a row that end a search;
  its values are never proposed again (the random oracle never repeats values; a Bayesian
  proposal that repeats tried values is replaced by a random one). `sweep.search_minutes` is
  the budget.
- A trial reports its validation accuracy at each rung (`update_trial` at the rung's step);
  the pruner (fmnist/search/pruning.py) decides from every trial's score at that rung whether
  it goes on, and the answer is the trial's status: STOPPED means pruned.

The scores and the skipped trials are part of the oracle's saved state, so a resumed sweep,
or a chief serving workers, decides as the first process would have.
"""

from __future__ import annotations

import copy
from typing import Any

import keras_tuner as kt

from fmnist.search import ktapi
from fmnist.search.pruning import Pruner, Scores

NOT_TRAINED = "not trained: "  # the start of a skipped trial's reason (FailedTrialError's message)
SKIPS_IN_A_ROW = 25  # skipped trials in a row that end a search: every proposal is too slow or invalid


def skipped_reason(message: str | None) -> bool:
    """Whether a failed trial's message says it never trained."""
    return f"FailedTrialError: {NOT_TRAINED}" in (message or "")


class Scheduled:
    """Mixin for a keras-tuner oracle. `pruner`: decides at rungs; `failures`: trained trials
    failing in a row that end the search (keras-tuner's own count would include skipped ones)."""

    def __init__(self, *args: Any, pruner: Pruner, failures: int, **kwargs: Any) -> None:
        self.pruner, self.failure_limit = pruner, failures
        self.scores: Scores = {}
        self.pruned: dict[str, int] = {}  # trial id -> the rung it stopped at
        self.skipped: list[str] = []
        self._ceiling = 0
        super().__init__(*args, max_consecutive_failed_trials=10**9, **kwargs)

    @property
    def max_trials(self) -> int | None:
        """The ceiling plus the skipped trials: keras-tuner stops at max_trials trials created."""
        return self._ceiling + len(self.skipped) if self._ceiling else None

    @max_trials.setter
    def max_trials(self, value: int | None) -> None:
        """keras-tuner sets it; the time limit sets it to the trials so far (skipped ones included)."""
        self._ceiling = max(0, (value or 0) - len(getattr(self, "skipped", ()))) if value else 0

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") == "RUNNING" and values and ktapi.tried(self, values):
            values = ktapi.random_values(self)
            response = {"status": "RUNNING", "values": values} if values else {"status": "STOPPED", "values": None}
        return response

    @kt.synchronized
    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int = 0):
        """Record the metrics; at a rung's step, the pruner's answer: a copy of the trial with
        status STOPPED when it is pruned (the oracle's own record stays RUNNING until it ends)."""
        trial = super().update_trial(trial_id, metrics, step)
        rung, value = self.pruner.rung(int(step)) if step else None, metrics.get(self.objective.name)
        if rung is None or value is None:
            return trial
        self.scores.setdefault(rung, {})[trial_id] = float(value)
        keep = self.pruner.keep(rung, float(value), self.scores)
        if not keep:
            self.pruned[trial_id] = rung
        self.save()
        if keep:
            return trial
        answer = copy.copy(trial)
        answer.status = ktapi.TrialStatus.STOPPED
        return answer

    @kt.synchronized
    def end_trial(self, trial) -> None:
        if trial.status == "FAILED" and skipped_reason(trial.message) and trial.trial_id not in self.skipped:
            self.skipped.append(trial.trial_id)
        super().end_trial(trial)
        self._check_failures()

    def _check_failures(self) -> None:
        """keras-tuner's rule (that many failures in a row end the search), counting trained
        trials only; and SKIPS_IN_A_ROW skipped ones, which would otherwise go on for ever."""
        failed = skipped = 0
        for trial_id in self.end_order:
            if trial_id in self.skipped:
                skipped += 1
            else:
                skipped, failed = 0, failed + 1 if self.trials[trial_id].status == "FAILED" else 0
            if failed >= self.failure_limit or skipped >= SKIPS_IN_A_ROW:
                raise RuntimeError(f"Number of consecutive failures exceeded the limit of {max(failed, skipped)}."
                                   f"\n{self.trials[trial_id].message or ''}")

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["fmnist"] = {"scores": {str(r): s for r, s in self.scores.items()}, "pruned": self.pruned,
                           "skipped": self.skipped}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        ours = state.get("fmnist", {})
        self.scores = {int(r): dict(s) for r, s in ours.get("scores", {}).items()}
        self.pruned, self.skipped = dict(ours.get("pruned", {})), list(ours.get("skipped", []))
