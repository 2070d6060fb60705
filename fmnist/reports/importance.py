"""Which hyperparameters matter: fANOVA over a sweep's trials, computed by Optuna.

fANOVA (Hutter, Hoos & Leyton-Brown, ICML 2014) fits a random forest from the settings to
the score and splits the forest's variance into one share per hyperparameter: the part of
the score's spread that this setting alone explains. Optuna's `FanovaImportanceEvaluator`
(seeded, so a sweep's picture draws the same twice) runs on an in-memory study built from
the trials; nothing here is our own statistics.

A hyperparameter that only some trials set (a conditional one, filters_3 beside
conv_layers) is left out rather than filled in: fANOVA needs every trial to have a value,
a made-up one would be a category the model never saw, and the hyperparameter it hangs on
(conv_layers) carries its effect. Those that took one value are left out too (no spread to
explain). Both are named beside the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MIN_TRIALS = 3  # fewer, and a forest of 64 trees fits noise
SEED = 0


@dataclass(frozen=True)
class Importance:
    """Shares of the score's variance, largest first; empty with `reason` where none was
    computed."""

    shares: dict[str, float]
    trials: int
    fixed: list[str] = field(default_factory=list)
    conditional: list[str] = field(default_factory=list)
    reason: str = ""


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def distribution(values: list[Any]) -> tuple[Any, list[Any]]:
    """The Optuna distribution the observed `values` span, and the values as it holds them:
    numbers as an int or float range over min..max, booleans as a choice of both, anything
    else as a choice of the strings seen."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if all(is_number(v) for v in values):
        if all(isinstance(v, int) for v in values):
            return IntDistribution(min(values), max(values)), [int(v) for v in values]
        floats = [float(v) for v in values]
        return FloatDistribution(min(floats), max(floats)), floats
    if all(isinstance(v, bool) for v in values):
        return CategoricalDistribution(sorted(set(values))), list(values)
    strings = [str(v) for v in values]
    return CategoricalDistribution(sorted(set(strings))), strings


def importances(columns: dict[str, list[Any]], target: list[float], seed: int = SEED) -> Importance:
    """fANOVA shares of `target`'s variance per hyperparameter. `columns` holds one value per
    trial for each hyperparameter, None where the trial did not set it; `target` holds each
    trial's score (finite)."""
    n = len(target)
    present = {name: [v for v in values if v is not None] for name, values in columns.items()}
    varied = [name for name in columns if len({str(v) for v in present[name]}) > 1]
    fixed = [name for name in columns if name not in varied]
    conditional = [name for name in varied if len(present[name]) < n]
    params = [name for name in varied if name not in conditional]
    reason = ""
    if n < MIN_TRIALS:
        reason = f"{n} trained trial{'s' * (n != 1)}: importance needs at least {MIN_TRIALS}"
    elif len(params) < 2:
        reason = (f"{len(params) or 'no'} hyperparameter{'s' * (len(params) != 1)} varied across all {n} trials: "
                  "importance needs two to compare")
    elif not all(math.isfinite(t) for t in target) or max(target) == min(target):
        reason = f"all {n} trials scored the same: no variance to split"
    if reason:
        return Importance({}, n, fixed, conditional, reason)
    return Importance(fanova(columns, params, target, seed), n, fixed, conditional)


def fanova(columns: dict[str, list[Any]], params: list[str], target: list[float], seed: int) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    spans = {name: distribution(columns[name]) for name in params}
    trials = [create_trial(params={name: spans[name][1][i] for name in params},
                           distributions={name: spans[name][0] for name in params}, value=float(value))
              for i, value in enumerate(target)]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" on every sweep
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
        study.add_trials(trials)
        shares = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed), params=params)
        return {name: float(share) for name, share in shares.items()}
    finally:
        optuna.logging.set_verbosity(verbosity)
