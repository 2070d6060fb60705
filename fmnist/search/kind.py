"""What a kind of sweep brings to the one sweep engine.

The engine (`sweeping`, `closing`, `promote`) runs every sweep the same way: the search, its
parent and child runs, resume, the distributed chief and workers, the leaderboard, promotion,
the retrain, registration against the alias holder, the closing table. A kind says only what
differs: its data, the hypermodel that builds and trains a trial, the first trials, how the
winner is measured and registered, and how the closing table states its score.

The kinds are applications (fmnist/kinds/): the engine is handed one (`sweeping.sweep(cfg,
kind)`) and never imports them, so search/ holds no branch on what is swept.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from fmnist.config import Config
from fmnist.search.registry import HolderScore
from fmnist.search.tuning import ConfigHyperModel


@dataclass(frozen=True)
class Registration:
    """What the registry gets from the winning run: the model's URI, metrics measured on it at
    the closing (besides the run's own train and validation ones), and tags of the kind's."""

    model_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class SweepKind(ABC):
    """One kind of sweep. `name`: its key in the kinds table (fmnist/kinds/). `test_set`: its
    data has a test set, which the closing evaluates the registered model on once, and the
    closing table shows as a column."""

    def __init__(self, name: str, test_set: bool) -> None:
        self.name, self.test_set = name, test_set

    @abstractmethod
    def data(self, cfg: Config) -> Any:
        """What the trials train and validate on; loaded before the tracking store is opened,
        so bad data costs nothing."""

    def usable(self, cfg: Config) -> Config:
        """The config the sweep runs once the tracking store is open: the same, unless the kind
        must drop what this store cannot give."""
        return cfg

    @abstractmethod
    def hypermodel(self, cfg: Config, data: Any, minutes: float) -> ConfigHyperModel:
        """The trials' hypermodel; a trial projected to take longer than `minutes` fails (0: no limit)."""

    @abstractmethod
    def longer(self, cfg: Config, data: Any) -> ConfigHyperModel:
        """The hypermodel that trains a trial's settings longer: promotion and the retrain."""

    def first_trials(self, cfg: Config) -> list[dict[str, Any]]:
        """The values of a new sweep's first trials; none unless the kind knows good ones."""
        return []

    @abstractmethod
    def registered_model(self, cfg: Config) -> str:
        """The registered model the winner becomes a version of."""

    @abstractmethod
    def holder_score(self, cfg: Config, data: Any) -> HolderScore:
        """How the alias holder is measured on the images the winner was measured on."""

    @abstractmethod
    def registration(self, cfg: Config, run_id: str, data: Any) -> Registration:
        """What the registry gets from run `run_id`, the winner (a trial, or its retrain)."""

    def ensemble(self, cfg: Config, run_ids: list[str], data: Any) -> str | None:
        """The models of runs `run_ids` (the winner first, then the next best trials) averaged
        into one, logged as a child run whose `model_uri` tag, `val_accuracy`, `train_accuracy`
        and `overfit_gap` the closing reads as it reads the winner's; returns its run id. None:
        this kind makes no ensembles (`selection.ensemble` is then ignored), or these runs make
        none (the kind said why)."""
        return None

    @abstractmethod
    def score(self, best: dict[str, Any], cfg: Config) -> str:
        """The closing table's words for the registered model's score."""
