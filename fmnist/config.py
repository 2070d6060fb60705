"""The schema every composed config is checked against before any data is loaded.

Hydra composes YAML; pydantic then checks each value's type and range and rejects
unknown keys. Each problem becomes one line that names the key and what is allowed,
so a typo costs a second, not a training run. Every value lives in the YAML under
fmnist/conf and nowhere else: these models hold types, ranges and cross-field rules but
no defaults, so the two cannot disagree (a key the YAML lacks fails validation).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypeVar, Union, get_args

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fmnist.errors import ConfigError
from fmnist.search.paths import EACH, list_of, node, parts

SIZE = 28  # Fashion-MNIST's side
TOKEN_ENV = "FMNIST_SWEEP_TOKEN"  # a distributed sweep's shared secret (DistributedConfig)
Padding = Literal["same", "valid"]
Mode = Literal["auto", "photo", "fmnist"]  # predict: how an input is prepared
Look = Literal["fmnist", "colour", "plain"]  # photo.input: what a model takes
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class Limits(Strict):
    """What a readable image may be: tiny images hold no garment, huge ones (in pixels or
    bytes) and huge requests would exhaust memory before any check on their content."""

    min_side: int = Field(ge=1, description="pixels; smaller images are rejected (a 28x28 input passes)")
    max_pixels: int = Field(ge=1, description="width x height above which an image is rejected unread")
    max_bytes: int = Field(ge=1, description="bytes per image file above which it is rejected unread")
    max_images: int = Field(ge=1, description="images per request to the served model; more: the request "
                            "is refused whole")
    max_request_pixels: int = Field(ge=1, description="pixels the served model may decode for one request "
                                    "(from the headers); more: the request is refused whole")


class PhotoSettings(Strict):
    """The photo steps' knobs (their values: fmnist/conf/photo/default.yaml).
    `input` and `size` say what the model takes: a model fine-tuned on a user's photos may
    take a larger or colour input, and carries its settings so prediction matches training."""

    input: Look = Field(description="fmnist: segmented, gray, negated (the dataset's look); "
                        "colour: segmented, RGB on black; plain: the whole photo, RGB, no segmentation")
    size: int = Field(ge=16, le=256, description="side of the square model input in pixels")
    work_size: int = Field(ge=32, le=1024, description="longest side while segmenting (speed vs detail)")
    border: float = Field(ge=0.0, lt=0.4, description="frame share GrabCut starts from as background")
    grabcut_iters: int = Field(ge=1, le=20, description="GrabCut refinement rounds")
    smooth: float = Field(ge=0.0, le=0.2, description="mask opening/closing kernel, share of work_size")
    min_part: float = Field(ge=0.0, le=1.0, description="keep regions at least this share of the "
                            "largest one (the second shoe of a pair)")
    floor: float = Field(ge=0.0, le=1.0, description="darkest garment intensity, so a light garment "
                         "does not vanish into the black background")
    min_contrast: float = Field(gt=0.0, le=1.0, description="narrowest tone range stretched to [floor, 1]")
    margin: float = Field(ge=0.0, le=0.4, description="black margin around the garment, share of the frame")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The model input this makes: (size, size, channels)."""
        return (self.size, self.size, 1 if self.input == "fmnist" else 3)


class ConvBlock(Strict):
    filters: int = Field(ge=1, le=1024)
    convs: int = Field(ge=1, le=4, description="conv layers in the block (2: VGG style)")
    kernel: int = Field(ge=1, le=11)
    stride: int = Field(ge=1, le=4, description="of the block's first conv (2: a cheap stem for large inputs)")
    padding: Padding
    pool: bool
    batch_norm: bool
    dropout: float = Field(ge=0.0, lt=1.0)


class DenseLayer(Strict):
    units: int = Field(ge=1, le=8192)
    dropout: float = Field(ge=0.0, lt=1.0)


class Augment(Strict):
    """Training-time augmentation; all off by default (the original project had none).
    With `flip`, the logged model also averages each prediction over the image and its
    mirror image (`mirror_average`; fmnist.training.model.mirror_averaged)."""

    flip: bool
    mirror_average: bool
    shift: float = Field(ge=0.0, le=0.5)
    zoom: float = Field(ge=0.0, le=0.5)
    perspective: float = Field(ge=0.0, le=0.3, description="half the images warped, corners moved "
                               "by up to this share of the side, then re-framed as a photo is")

    @property
    def averages_mirror(self) -> bool:
        return self.flip and self.mirror_average

    @property
    def warps(self) -> bool:
        """A step made with OpenCV on the host is on (fmnist.training.augment.WarpedBatches)."""
        return bool(self.zoom or self.perspective)


class ModelConfig(Strict):
    conv_blocks: list[ConvBlock]
    pooling: Literal["flatten", "average"] = Field(description="what joins the conv blocks to the "
                                                   "dense layers: every position, or their mean per filter")
    dense: list[DenseLayer]
    augment: Augment
    optimizer: OptimizerName
    learning_rate: float = Field(gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _fits_input(self, info: ValidationInfo) -> "ModelConfig":
        """Strides, valid padding and pooling shrink the image; catch a stack that shrinks it
        away. The input is 28x28 unless the validation context says otherwise (`input_side`)."""
        side = size = (info.context or {}).get("side", SIZE)
        for i, b in enumerate(self.conv_blocks if side else []):
            size = -(-size // b.stride)
            size = size - b.convs * (b.kernel - 1) if b.padding == "valid" else size
            size = size // 2 if b.pool else size
            if size < 1:
                raise ValueError(f"conv_blocks[{i}] shrinks the {side}x{side} input to nothing; "
                                 "use padding 'same' or fewer blocks")
        return self


class DataConfig(Strict):
    dir: Optional[str]
    val_fraction: float = Field(gt=0.0, lt=0.5)
    subset: Optional[int] = Field(ge=100, le=60000)


class TrainerConfig(Strict):
    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(ge=1, le=8192)
    early_stopping: int = Field(ge=0, description="patience in epochs on val_loss; 0 turns it off")
    reduce_lr: int = Field(ge=0, description="patience before halving the learning rate; 0 turns it off")
    lr_schedule: Literal["constant", "cosine"] = Field(
        description="cosine: from the model's learning rate down to near 0 over the run's epochs")
    verbose: int = Field(ge=0, le=2)
    steps_per_execution: int = Field(ge=1, le=1024, description="batches per call from Python into the "
                                     "compiled training step")

    @model_validator(mode="after")
    def _one_lr_policy(self) -> "TrainerConfig":
        if self.reduce_lr and self.lr_schedule != "constant":
            raise ValueError(f"reduce_lr: halving on a plateau needs lr_schedule=constant, not {self.lr_schedule}")
        return self


class MlflowConfig(Strict):
    tracking_uri: Optional[str]
    experiment: str
    run_name: Optional[str]
    log_model: bool
    registered_model: str


class ReportConfig(Strict):
    """The pictures every run logs (fmnist/reports). Sizes are capped so that drawing them
    costs a quick run under a tenth of its time: t-SNE is the slow one, so it gets its own sample."""

    enabled: bool
    embeddings: bool = Field(description="projector files and the PCA / t-SNE plots")
    trial_embeddings: bool = Field(description="on every sweep trial too, not only on the registered model")
    embed_sample: int = Field(ge=10, le=10000, description="test images in the projector and PCA plot")
    tsne_sample: int = Field(ge=10, le=10000, description="of those, the first N go into t-SNE")
    mistakes: int = Field(ge=1, le=100, description="most confident test mistakes in the grid")
    seed: int = Field(ge=0, description="picks the sample: the same test images for every run")


class TrainConfig(Strict):
    name: str
    seed: int = Field(ge=0)
    data: DataConfig
    model: ModelConfig
    trainer: TrainerConfig
    mlflow: MlflowConfig
    report: ReportConfig


class SearchParam(Strict):
    """One entry of a search space (fmnist/conf/search/), at the config path it sets. Its
    unset fields mean "not this kind of entry", not a default."""

    type: Literal["choice", "int", "float", "log_float", "boolean", "fixed"]
    values: Optional[list[Any]] = None
    value: Any = None
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    when: Optional[dict[str, list[Any]]] = Field(None, description="searched only in trials where this other "
                                                 "entry took one of these values")
    shared: bool = Field(False, description="a `*` path: one value for every item, not one per item")

    @model_validator(mode="after")
    def _complete(self) -> "SearchParam":
        if self.type == "choice" and not self.values:
            raise ValueError("type 'choice' needs a non-empty 'values' list")
        if self.type == "fixed" and self.value is None:
            raise ValueError("type 'fixed' needs a 'value'")
        if self.type in ("int", "float", "log_float"):
            if self.min is None or self.max is None:
                raise ValueError(f"type '{self.type}' needs 'min' and 'max'")
            if self.min > self.max:
                raise ValueError(f"min {self.min:g} is above max {self.max:g}")
            if self.type == "log_float" and self.min <= 0:
                raise ValueError("type 'log_float' needs min > 0")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step {self.step:g} must be above 0")
        if self.type == "int" and any(v is not None and v != int(v) for v in (self.min, self.max, self.step)):
            raise ValueError("type 'int' takes whole numbers for min, max and step")
        return self


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


# Each tuner takes its own keys (fmnist/conf/tuner/<kind>.yaml), chosen by `kind`.
TunerConfig = Annotated[Union[RandomTuner, BayesianTuner, HyperbandTuner], Field(discriminator="kind")]


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


class PhotoAugment(Strict):
    """Training-time changes to photo inputs, made by layers in the training graph (the
    logged model has none). Brightness and contrast keep a black background black."""

    flip: bool
    shift: float = Field(ge=0.0, le=0.5, description="translation, share of the side")
    zoom: float = Field(ge=0.0, le=0.5, description="zoom in (a crop) or out (a margin), share of the side")
    rotate: float = Field(ge=0.0, le=0.5, description="rotation, share of a full turn")
    perspective: float = Field(ge=0.0, le=0.5, description="corners moved by up to this share of the side")
    brightness: float = Field(ge=0.0, le=0.9, description="gain in [1 - b, 1 + b]")
    contrast: float = Field(ge=0.0, le=0.9, description="gamma in [1 - c, 1 + c]")


class FinetuneConfig(Strict):
    """How `fmnist.finetune` and photo sweeps train on a folder of the user's labelled photos."""

    base: str = Field(description="Fashion-MNIST model whose weights start the network: best | "
                      "models:/... | runs:/... | FILE.keras | none (from scratch, built from `model`)")
    trainable: Literal["all", "dense", "classifier"] = Field(description="what trains after the warm-up")
    warmup_epochs: int = Field(ge=0, le=1000, description="epochs with only the new classifier training")
    dropout: float = Field(ge=0.0, lt=1.0, description="before the new classifier")
    label_smoothing: float = Field(ge=0.0, lt=1.0)
    augment: PhotoAugment
    val_fraction: float = Field(gt=0.0, lt=0.5, description="of each class, when no validation folder is given")
    registered_model: str
    cache: str = Field(description="prepared photo inputs, by content and photo settings")
    workers: int = Field(ge=1, le=64, description="threads preparing photos")

    @property
    def from_scratch(self) -> bool:
        return self.base == "none"


class Config(TrainConfig):
    """Everything `fmnist.train`, `fmnist.sweep` and `fmnist.finetune` read: one composed
    config serves all, so `experiment=quick` means "quick" for each command. With `photos`
    set, a sweep fine-tunes on that folder instead of training on Fashion-MNIST."""

    photos: Optional[str] = Field(description="a folder of class subfolders of photos")
    validation: Optional[str] = Field(description="a second such folder to select on; null: a split of photos")
    photo: PhotoSettings
    limits: Limits
    finetune: FinetuneConfig
    search: dict[str, SearchParam]

    @field_validator("search", mode="before")
    @classmethod
    def _leaves(cls, space: Any) -> Any:
        """A photo sweep's space nests like the config (`photo: {size: {type: choice, ...}}`,
        so `search.photo.size.values=[48,64]` overrides it): flattened to config paths here.
        An entry is a mapping with a `type`."""
        if not isinstance(space, dict):
            return space
        flat: dict[str, Any] = {}
        for key, value in space.items():
            if isinstance(value, dict) and "type" not in value and value:
                flat.update({f"{key}.{k}": v for k, v in cls._leaves(value).items()})
            else:
                flat[key] = value
        return flat
    tuner: TunerConfig
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
        if self.photos:
            check_start(self)
            if self.tuner.kind == "hyperband":
                raise ValueError("tuner.kind=hyperband: photo sweeps take random or bayesian (trials set their epochs)")
        check_space(self)
        if self.cluster.workers not in (0, "auto") and self.distributed.role != "none":
            raise ValueError("cluster.workers starts its own chief and workers; leave distributed.role at none")
        return self


def check_space(cfg: Config) -> None:
    """Every entry names a config path that exists (a `*` or a count: a list) and takes every
    value the entry can give it; `when` and a list's count come before the entries that
    depend on them. So a bad space fails here, with one line, before any training."""
    tree, declared = cfg.model_dump(), []
    for path, p in cfg.search.items():
        try:
            target = node(tree, path)
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"search.{path}: not a config path (such as model.learning_rate, trainer.batch_size, "
                             "model.conv_blocks.*.filters)") from None
        if EACH in path and list_of(path) in cfg.search and list_of(path) not in declared:
            raise ValueError(f"search.{path}: put it below search.{list_of(path)} (the count it depends on)")
        if p.when and (len(p.when) != 1 or next(iter(p.when)) not in declared):
            raise ValueError(f"search.{path}.when: name one entry declared above it (e.g. {{finetune.base: [best]}})")
        if isinstance(target, list):
            check_count(path, p)
        else:
            check_values(cfg, path, p)
        declared.append(path)
    if cfg.tuner.kind == "hyperband" and "trainer.epochs" in cfg.search:
        raise ValueError("search.trainer.epochs: Hyperband sets epochs itself (tuner.max_epochs); remove it")


def candidates(p: SearchParam) -> list[Any]:
    """The values an entry can give, or its ends: what must all pass the target's range."""
    if p.type == "choice":
        return list(p.values)
    if p.type == "fixed":
        return [p.value]
    if p.type == "boolean":
        return [False, True]
    return [int(p.min), int(p.max)] if p.type == "int" else [p.min, p.max]


def check_count(path: str, p: SearchParam) -> None:
    whole = all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in candidates(p))
    if p.type not in ("int", "choice", "fixed") or not whole:
        raise ValueError(f"search.{path}: a list's length takes whole numbers from 0 (type int, choice or fixed)")


def check_values(cfg: BaseModel, path: str, p: SearchParam) -> None:
    """Each value validated where it lands (`trainer.epochs`), so an epochs of 0 in a space
    fails here, and not as a silently different trial."""
    *parents, leaf = parts(path)
    owner = cfg
    for part in parents:
        owner = owner[0 if part == EACH else part] if isinstance(owner, list) else getattr(owner, str(part))
    if p.type in ("float", "log_float") and takes_whole_numbers(owner, leaf):
        raise ValueError(f"search.{path}: type '{p.type}' draws fractions from {p.min:g} to {p.max:g}, and {path} "
                         "takes whole numbers; use type int (or choice)")
    for value in candidates(p):
        try:
            type(owner).model_validate({**owner.model_dump(), leaf: value}, context={"side": None})
        except ValidationError as e:
            msg = e.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"search.{path}: {value!r} is out of range for {path} ({msg})") from None


def takes_whole_numbers(owner: BaseModel, leaf: str | int) -> bool:
    """Whether the field `leaf` of `owner` is an int: its range's ends (1.0, 3.0) pass as ints,
    the fractions a trial draws between them would not."""
    field = type(owner).model_fields.get(str(leaf)) if isinstance(owner, BaseModel) else None
    return field is not None and int in (field.annotation, *get_args(field.annotation))


def check_start(cfg: Config) -> None:
    """A Fashion-MNIST start must take the look its weights learnt."""
    if not cfg.finetune.from_scratch and (cfg.photo.input, cfg.photo.size) != ("fmnist", SIZE):
        raise ValueError(f"finetune.base={cfg.finetune.base}: a Fashion-MNIST start takes the 28x28 fmnist look; "
                         f"set photo.input=fmnist photo.size=28, or finetune.base=none")


def input_side(raw: dict[str, Any]) -> dict[str, int | None]:
    """The validation context for a raw config: the side of the input `model` is built for.
    A photo model from scratch takes `photo.size`; one that starts from Fashion-MNIST weights
    builds no `model` (None: nothing to check); everything else takes 28x28."""
    base = (raw.get("finetune") or {}).get("base")
    if base == "none":
        return {"side": (raw.get("photo") or {}).get("size", SIZE)}
    return {"side": None if raw.get("photos") else SIZE}


M = TypeVar("M", bound=BaseModel)


def _allowed(schema: type[BaseModel], loc: tuple) -> str:
    """The keys allowed at `loc`, found by walking the schema's field annotations; a tagged
    union (the tuner) puts its tag in `loc`, which picks the member."""
    members: list[type[BaseModel]] = []
    for part in loc:
        tagged = [m for m in members if part in get_args(m.model_fields["kind"].annotation)]
        if tagged:
            schema = tagged[0]
        if isinstance(part, int) or part not in schema.model_fields:
            continue  # a list index, a dict key or a tag: the item's schema was taken at its field
        annotation = schema.model_fields[part].annotation
        args = getattr(annotation, "__args__", (annotation,))  # list[X], dict[str, X], Optional[X], Union[...]
        members = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if members:
            schema = members[0]
    return ", ".join(schema.model_fields)


TUNER_KINDS = {get_args(m.model_fields["kind"].annotation)[0] for m in get_args(get_args(TunerConfig)[0])}


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _one_line(schema: type[BaseModel], err: dict[str, Any], prefix: str) -> str:
    raw = tuple(p for p in err["loc"] if p not in ("function-after",))
    loc = tuple(p for i, p in enumerate(raw) if not (raw[i - 1:i] == ("tuner",) and p in TUNER_KINDS))
    key = prefix + _dotted(loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed keys: {_allowed(schema, raw[:-1])}"
    if not loc:
        return msg
    if isinstance(err.get("input"), dict):
        return f"{key}: {msg}"
    return f"{key}={err.get('input')!r}: {msg}"


def validate(schema: type[M], cfg: DictConfig | dict, prefix: str = "") -> M:
    """Check `cfg` against `schema`; raise ConfigError listing every problem, one per line.
    An interpolation that cannot be resolved (`${oc.env:UNSET}`) is one of them."""
    try:
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    except OmegaConfBaseException as e:
        raise ConfigError(unresolved(e)) from None
    raw = {k: v for k, v in raw.items() if k != "hydra"}
    try:
        return schema.model_validate(raw, context=input_side(raw))
    except ValidationError as e:
        raise ConfigError("\n".join(_one_line(schema, err, prefix) for err in e.errors())) from None


def unresolved(e: OmegaConfBaseException) -> str:
    """`sweep.name='${oc.env:UNSET}': cannot resolve: Environment variable 'UNSET' not found`:
    the key, the value as written, and OmegaConf's reason without its own key lines."""
    reason = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(e.msg).splitlines()[0]).strip('"')
    written = f"={e.child_node._value()!r}" if getattr(e, "child_node", None) is not None else ""
    return f"{e.full_key}{written}: cannot resolve: {reason}"


def packaged(path: str) -> dict[str, Any]:
    """One YAML file of the package's config tree (`photo/default.yaml`) as a dict: what the
    served model reads, where no Hydra composition runs."""
    return OmegaConf.to_container(OmegaConf.create(resources.files("fmnist.conf").joinpath(path).read_text()))


class ModelRef(Strict):
    ref: str


class PredictSettings(Strict):
    min_confidence: float = Field(ge=0.0, le=1.0)
    workers: int = Field(ge=1, le=64)
    sheet_columns: int = Field(ge=1, le=50)
    sheet_max: int = Field(ge=1)


class PredictConfig(Strict):
    model: ModelRef
    images: Optional[list[str]]
    recursive: bool
    output: Optional[str]
    sheet: Optional[str]
    preprocess: Mode
    predict: PredictSettings
    photo: PhotoSettings
    limits: Limits
    mlflow: MlflowConfig

    @field_validator("images", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        if v is None or v == [] or v == "":
            raise ValueError("give the photos: images=FILE, a folder, a glob ('photos/*.jpg') or a list [a.jpg,b.png]")
        return [v] if isinstance(v, str) else v

    @field_validator("output")
    @classmethod
    def _table_format(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and Path(v).suffix.lower() not in (".csv", ".json"):
            raise ValueError("output file must end in .csv or .json")
        return v

    @field_validator("sheet")
    @classmethod
    def _png(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and Path(v).suffix.lower() != ".png":
            raise ValueError("sheet file must end in .png")
        return v


class ReportCommand(Strict):
    run: Optional[str]
    model_ref: Optional[str]
    data_dir: Optional[str]
    out: Optional[str]
    mlflow: MlflowConfig
    report: ReportConfig

    @model_validator(mode="after")
    def _one_source(self) -> "ReportCommand":
        if (self.run is None) == (self.model_ref is None):
            raise ValueError("give exactly one of run=RUN_ID or model=ALIAS (e.g. model=best)")
        return self


def from_yaml(schema: type[M], path: str, **changes: Any) -> M:
    """The settings in one of the package's YAML files (`photo/default.yaml`), checked, with
    `changes`: for code that runs outside a composed config (the served model, tests)."""
    return schema.model_validate({**packaged(path), **changes})
