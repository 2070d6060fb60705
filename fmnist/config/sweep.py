"""What a sweep adds to a training run: the tuner, the sweep's state folder and time budgets,
how the winner is selected and retrained, and how the sweep spreads over processes. `Config`
is the one config `fmnist.train`, `fmnist.sweep` and `fmnist.finetune` all read."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from fmnist.config.model import SIZE
from fmnist.config.photos import FinetuneConfig, Limits, PhotoSettings
from fmnist.config.space import Space, check_space
from fmnist.config.strict import Strict
from fmnist.config.training import TrainConfig

TOKEN_ENV = "FMNIST_SWEEP_TOKEN"  # a distributed sweep's shared secret (DistributedConfig)


class RandomTuner(Strict):
    kind: Literal["random"]
    max_trials: int = Field(ge=1)
    executions_per_trial: int = Field(ge=1)


class BayesianTuner(Strict):
    kind: Literal["bayesian"]
    max_trials: int = Field(ge=1)
    executions_per_trial: int = Field(ge=1)
    initial_points: int = Field(ge=1, description="random trials before the model guides")


class HyperbandTuner(Strict):
    kind: Literal["hyperband"]
    executions_per_trial: int = Field(ge=1)
    max_epochs: int = Field(ge=1, description="epochs of the longest trial")
    factor: int = Field(ge=2, description="reduction factor between rounds")
    iterations: int = Field(ge=1, description="full brackets to run")


# Each tuner takes its own keys (conf/tuner/<kind>.yaml), chosen by `kind`.
TunerConfig = Annotated[Union[RandomTuner, BayesianTuner, HyperbandTuner], Field(discriminator="kind")]


class PrunerConfig(Strict):
    """How a trial can stop early (conf/pruner/). `asha`: asynchronous successive halving over
    `rungs`, epochs of training counted in passes over the training images (0.25: a quarter of
    them, once). Every trial trains towards the last rung; at each earlier rung it goes on only
    if its validation accuracy is in the best 1/`eta` of the trials that reached that rung so far
    (the first trial at a rung always goes on). `none`: every trial trains `trainer.epochs`."""

    kind: Literal["asha", "none"]
    eta: int = Field(ge=2, le=10, description="1/eta of the trials at a rung go on to the next")
    rungs: list[float] = Field(min_length=1, max_length=8, description="epochs at each rung, rising; the "
                               "last is a trial's whole length")

    @field_validator("rungs")
    @classmethod
    def _rising(cls, rungs: list[float]) -> list[float]:
        if any(r <= 0 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
            raise ValueError(f"{rungs}: must rise from above 0 (epochs at each rung, e.g. [0.25, 1, 3, 9])")
        if rungs[-1] != round(rungs[-1]):
            raise ValueError(f"{rungs}: the last rung is a trial's trainer.epochs: a whole number of epochs")
        if parts_per_epoch(rungs) is None:
            raise ValueError(f"{rungs}: each rung must be a whole number of 1/{MAX_PARTS}ths of an epoch at most "
                             "(e.g. 0.25, 0.5, 1, 3)")
        return rungs

    @property
    def active(self) -> bool:
        return self.kind == "asha"

    @property
    def parts(self) -> int:
        """Parts each epoch is trained in, so that every rung falls at the end of one."""
        return parts_per_epoch(self.rungs) if self.active else 1

    @property
    def rung_steps(self) -> list[int]:
        """Each rung as a count of parts trained (Keras epochs of `1/parts` of the images)."""
        return [round(r * self.parts) for r in self.rungs]


MAX_PARTS = 8


def parts_per_epoch(rungs: list[float]) -> int | None:
    """The fewest parts an epoch splits into so that every rung ends a part; None past MAX_PARTS."""
    for parts in range(1, MAX_PARTS + 1):
        if all(abs(r * parts - round(r * parts)) < 1e-9 for r in rungs):
            return parts
    return None


def plain(name: str, parent: str) -> str:
    """A name that is one folder under `parent`, never `..`, `.`, a path or a hidden name."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise ValueError("must be a plain name: letters, digits, '_', '.', '-', not starting with '.' "
                         f"(it names a folder under {parent})")
    return name


class SweepConfig(Strict):
    name: str
    dir: str
    fresh: bool
    search_minutes: float = Field(ge=0, description="no trial starts after this long (per invocation); 0: no limit")
    trial_minutes: float = Field(ge=0, description="a trial projected to take longer fails a few batches in; "
                                 "0: no limit")

    @field_validator("name")
    @classmethod
    def _plain(cls, name: str) -> str:
        """It names the sweep's state folder under `dir`: `..` would name the folder above."""
        return plain(name, "sweep.dir")

    @field_validator("dir")
    @classmethod
    def _no_way_up(cls, folder: str) -> str:
        """TensorFlow's file layer (keras-tuner's) cleans a path as text, so `missing/..` would be
        `.` there even where `missing` does not exist: a `..` anywhere names another folder."""
        if not folder.strip() or ".." in Path(folder).parts:
            raise ValueError("must be a folder path without a '..' component (e.g. sweeps, /data/sweeps)")
        return folder


class SelectionConfig(Strict):
    max_gap: float = Field(ge=0.0, le=1.0)
    alias: str
    retrain_epochs: int = Field(ge=0, description="0: register the winning trial's own model; "
                                "N: retrain its hyperparameters for N epochs first")
    retrain_minutes: float = Field(ge=0, description="fewer retrain epochs if N would take longer, "
                                   "at the trial's measured seconds per epoch; 0: no limit")
    promote: int = Field(ge=1, le=20, description="before the retrain, the best N eligible trials train "
                         "promote_epochs more, and the best of those is retrained; 1: no promotion")
    promote_epochs: int = Field(ge=1, le=1000)
    promote_minutes: float = Field(ge=0, description="all promotions together; 0: no limit")
    ensemble: int = Field(ge=1, le=10, description="a photo sweep registers the mean of its best N models "
                          "(the winner and the next best eligible trials) when no worse; 1: the winner alone")

    def epochs_at(self, epoch_seconds: float | None) -> int:
        """`retrain_epochs`, fewer if that many would take longer than `retrain_minutes` at the
        pace the trial measured: a slow winner gets a shorter retrain, not a late sweep."""
        return within(self.retrain_epochs, self.retrain_minutes, epoch_seconds)

    def promote_epochs_at(self, epoch_seconds: float | None) -> int:
        """`promote_epochs`, fewer if a candidate's share of `promote_minutes` is shorter."""
        return within(self.promote_epochs, self.promote_minutes / self.promote, epoch_seconds)


def within(epochs: int, minutes: float, epoch_seconds: float | None) -> int:
    """`epochs`, fewer if they would take longer than `minutes` (0: no limit) at that pace."""
    if not minutes or not epoch_seconds:
        return epochs
    return max(1, min(epochs, int(minutes * 60 // epoch_seconds)))


class DistributedConfig(Strict):
    """One sweep over several processes or machines: a chief serves keras-tuner's oracle at
    `address`, workers ask it for trials. `role: none` is the single-process sweep."""

    role: Literal["none", "chief", "worker"]
    address: Optional[str] = Field(description="HOST:PORT the chief listens on / workers connect to")
    tuner_id: Optional[str] = Field(description="worker name; null: worker-<host>-<pid>. "
                                    "A restarted worker with the same id resumes its trial")
    heartbeat: float = Field(gt=0.0, le=60.0, description="seconds between a worker's heartbeats")
    timeout: float = Field(gt=0.0, description="silence after which the chief hands a worker's trial "
                           "to another worker, and a worker gives up on a chief that went away")
    wait: float = Field(ge=0.0, description="seconds a worker waits for the chief to come up")
    threads: Optional[int] = Field(ge=1, le=1024, description="CPU threads for training; null: all")

    @field_validator("address")
    @classmethod
    def _host_port(cls, address: Optional[str]) -> Optional[str]:
        host, _, port = (address or "h:1").rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("expected HOST:PORT with a port from 1 to 65535")
        return address

    @field_validator("tuner_id")
    @classmethod
    def _not_chief(cls, tuner_id: Optional[str]) -> Optional[str]:
        """A plain name: it names the worker's state folder, <sweep.dir>/<sweep.name>-workers/<tuner_id>."""
        if tuner_id is not None:
            plain(tuner_id, "<sweep.dir>/<sweep.name>-workers")
        if tuner_id and "chief" in tuner_id:
            raise ValueError("must not contain 'chief' (keras-tuner reserves it for the chief)")
        return tuner_id

    @model_validator(mode="after")
    def _complete(self) -> "DistributedConfig":
        if self.role != "none" and not self.address:
            raise ValueError(f"role '{self.role}' needs distributed.address=HOST:PORT (the chief's)")
        if self.timeout <= self.heartbeat:
            raise ValueError(f"timeout {self.timeout:g} must exceed heartbeat {self.heartbeat:g}")
        if self.role != "none":
            self._shared_token()
        return self

    def _shared_token(self) -> None:
        """The secret every call to the chief carries (`TOKEN_ENV`): an environment variable, not
        a setting, so that MLflow never logs it and `ps` never shows it."""
        if not re.fullmatch(r"[!-~]{16,}", os.environ.get(TOKEN_ENV, "")):
            raise ValueError(f"role '{self.role}' needs ${TOKEN_ENV}: one secret of 16 or more printable "
                             "characters, no spaces, the same on the chief and every worker (e.g. export "
                             f"{TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe())'))")


class ClusterConfig(Strict):
    """`cluster.workers=N`: a chief and N workers on this machine, started by one command."""

    workers: Union[Literal["auto"], Annotated[int, Field(ge=0, le=256)]] = Field(
        description="0: no cluster, the sweep runs in this process; auto: per_gpu per GPU, 0 without one")
    per_gpu: int = Field(ge=1, le=64, description="workers sharing one GPU when workers is auto")
    port: int = Field(ge=0, le=65535, description="the chief's port; 0: a free one")
    restarts: int = Field(ge=0, description="times a worker that dies is started again")


class Config(TrainConfig):
    """Everything `fmnist.train`, `fmnist.sweep` and `fmnist.finetune` read: one composed
    config serves all, so `experiment=quick` means "quick" for each command. With `photos`
    set, a sweep fine-tunes on that folder instead of training on Fashion-MNIST."""

    photos: Optional[str] = Field(description="a folder of class subfolders of photos")
    validation: Optional[str] = Field(description="a second such folder to select on; null: a split of photos")
    photo: PhotoSettings
    limits: Limits
    finetune: FinetuneConfig
    search: Space
    tuner: TunerConfig
    pruner: PrunerConfig
    sweep: SweepConfig
    selection: SelectionConfig
    distributed: DistributedConfig
    cluster: ClusterConfig

    @model_validator(mode="after")
    def _searchable(self) -> "Config":
        photo_paths = [path for path in self.search if path.startswith(("finetune.", "photo."))]
        if photo_paths and not self.photos:
            raise ValueError(f"search.{photo_paths[0]}: a photo sweep's entry; give the photos: photos=DIR "
                             "(a folder with one subfolder of labelled photos per class)")
        if self.selection.ensemble > 1 and not self.photos:
            raise ValueError(f"selection.ensemble={self.selection.ensemble}: selection.ensemble is for photo sweeps "
                             "(photos=DIR); a Fashion-MNIST sweep registers one model: set selection.ensemble=1")
        if self.photos:
            check_start(self)
            if self.tuner.kind == "hyperband":
                raise ValueError("tuner.kind=hyperband: photo sweeps take random or bayesian (trials set their epochs)")
        check_space(self, self.search)
        if self.tuner.kind == "hyperband" and "trainer.epochs" in self.search:
            raise ValueError("search.trainer.epochs: Hyperband sets epochs itself (tuner.max_epochs); remove it")
        if self.pruner.active and self.tuner.kind == "hyperband":
            raise ValueError("tuner.kind=hyperband: Hyperband halves trials itself; add pruner=none")
        if self.pruner.active and "trainer.epochs" in self.search:
            raise ValueError(f"search.trainer.epochs: the pruner's rungs set a trial's epochs (pruner.rungs="
                             f"{self.pruner.rungs}); remove it ('~search.trainer.epochs') or add pruner=none")
        if self.cluster.workers not in (0, "auto") and self.distributed.role != "none":
            raise ValueError("cluster.workers starts its own chief and workers; leave distributed.role at none")
        return self


def check_start(cfg: Config) -> None:
    """A Fashion-MNIST start must take the look its weights learnt; an ImageNet one takes
    RGB photos (of any side it can pool: fmnist/photos/imagenet.py says when too small)."""
    if cfg.finetune.imagenet:
        if cfg.photo.input == "fmnist":
            raise ValueError(f"finetune.base={cfg.finetune.base}: an ImageNet network takes RGB photos, not the "
                             f"gray fmnist look; set photo.input=colour (or plain) and photo.size=96 or more")
        return
    if not cfg.finetune.from_scratch and (cfg.photo.input, cfg.photo.size) != ("fmnist", SIZE):
        raise ValueError(f"finetune.base={cfg.finetune.base}: a Fashion-MNIST start takes the 28x28 fmnist look; "
                         f"set photo.input=fmnist photo.size=28, or finetune.base=none")
