"""When a trial stops early: the pruners, one small class each behind `Pruner`, as Optuna
arranges its own. A pruner sees the validation accuracy of every trial at every rung it
reached (`scores[rung][trial_id]`) and says whether one trial goes on. The oracle
(fmnist/search/oracle.py) keeps the scores and asks; the trial (fmnist/training/callbacks.py,
`Rungs`) reports at each rung and stops when told.

Rungs are counted in steps: Keras epochs of `1/parts` of the training images (PrunerConfig),
so a first rung can be a quarter of the images seen once.
"""

from __future__ import annotations

from fmnist.config import PrunerConfig

Scores = dict[int, dict[str, float]]  # rung -> trial id -> validation accuracy there


class Pruner:
    """Never prunes: every trial trains to the end. `steps`: the rungs, in steps."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = list(steps)

    def rung(self, step: int) -> int | None:
        """The rung that ends at `step`, if one does."""
        return self.steps.index(step) if step in self.steps else None

    def keep(self, rung: int, value: float, scores: Scores) -> bool:
        """Whether a trial with `value` at `rung` goes on (`scores` already holds it)."""
        return True


class SuccessiveHalving(Pruner):
    """Asynchronous successive halving (ASHA, Li et al., 2020): a trial goes on from a rung if
    its value is among the best max(1, n // eta) of the n trials that reached that rung so far.
    Asynchronous: no trial waits for a full round, so workers never idle, and a rung's bar rises
    as better trials arrive. The last rung decides nothing: a trial there has finished."""

    def __init__(self, steps: list[int], eta: int) -> None:
        super().__init__(steps)
        self.eta = eta

    def keep(self, rung: int, value: float, scores: Scores) -> bool:
        if rung >= len(self.steps) - 1:
            return True
        values = sorted(scores[rung].values(), reverse=True)  # this trial's among them: never empty
        return value >= values[max(1, len(values) // self.eta) - 1]


def make_pruner(cfg: PrunerConfig) -> Pruner:
    """The configured pruner (conf/pruner/)."""
    if cfg.active:
        return SuccessiveHalving(cfg.rung_steps, cfg.eta)
    return Pruner([])
