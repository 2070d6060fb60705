"""The schema every composed config is checked against before any data is loaded.

Hydra composes YAML; pydantic then checks each value's type and range and rejects
unknown keys. Each problem becomes one line that names the key and what is allowed,
so a typo costs a second, not a training run.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, TypeVar

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fmnist.preprocess import SIZE, PhotoSettings

Padding = Literal["same", "valid"]
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop"]


class ConfigError(ValueError):
    """A bad config value; one line per problem, meant for the user."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class ConvBlock(Strict):
    filters: int = Field(32, ge=1, le=1024)
    convs: int = Field(1, ge=1, le=4, description="conv layers in the block (2: VGG style)")
    kernel: int = Field(3, ge=1, le=11)
    stride: int = Field(1, ge=1, le=4, description="of the block's first conv (2: a cheap stem for large inputs)")
    padding: Padding = "same"
    pool: bool = True
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class DenseLayer(Strict):
    units: int = Field(128, ge=1, le=8192)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class Augment(Strict):
    """Training-time augmentation; all off by default (the original project had none).
    With `flip`, the logged model also averages each prediction over the image and its
    mirror image (`mirror_average`; fmnist.model.mirror_averaged)."""

    flip: bool = False
    mirror_average: bool = True
    shift: float = Field(0.0, ge=0.0, le=0.5)
    zoom: float = Field(0.0, ge=0.0, le=0.5)
    perspective: float = Field(0.0, ge=0.0, le=0.3, description="half the images warped, corners moved "
                               "by up to this share of the side, then re-framed as a photo is")

    @property
    def averages_mirror(self) -> bool:
        return self.flip and self.mirror_average

    @property
    def changes_images(self) -> bool:
        """Any step that alters training images is on (so batches must be made one by one)."""
        return bool(self.flip or self.shift or self.zoom or self.perspective)


class ModelConfig(Strict):
    conv_blocks: list[ConvBlock] = []
    pooling: Literal["flatten", "average"] = Field("flatten", description="what joins the conv blocks to the "
                                                   "dense layers: every position, or their mean per filter")
    dense: list[DenseLayer] = [DenseLayer()]
    augment: Augment = Augment()
    optimizer: OptimizerName = "adam"
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)

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
    dir: Optional[str] = None
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    subset: Optional[int] = Field(None, ge=100, le=60000)


class TrainerConfig(Strict):
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=8192)
    early_stopping: int = Field(0, ge=0, description="patience in epochs on val_loss; 0 turns it off")
    reduce_lr: int = Field(0, ge=0, description="patience before halving the learning rate; 0 turns it off")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: from the model's learning rate down to near 0 over the run's epochs")
    verbose: int = Field(2, ge=0, le=2)

    @model_validator(mode="after")
    def _one_lr_policy(self) -> "TrainerConfig":
        if self.reduce_lr and self.lr_schedule != "constant":
            raise ValueError(f"reduce_lr: halving on a plateau needs lr_schedule=constant, not {self.lr_schedule}")
        return self


class MlflowConfig(Strict):
    tracking_uri: Optional[str] = None
    experiment: str = "fmnist"
    run_name: Optional[str] = None
    log_model: bool = True
    registered_model: str = "fmnist-cnn"


class ReportConfig(Strict):
    """The pictures every run logs (fmnist/reports). Sizes are capped so that drawing them
    costs a quick run under a tenth of its time: t-SNE is the slow one, so it gets its own sample."""

    enabled: bool = True
    embeddings: bool = Field(True, description="projector files and the PCA / t-SNE plots")
    trial_embeddings: bool = Field(False, description="on every sweep trial too, not only on the registered model")
    embed_sample: int = Field(1000, ge=10, le=10000, description="test images in the projector and PCA plot")
    tsne_sample: int = Field(250, ge=10, le=10000, description="of those, the first N go into t-SNE")
    mistakes: int = Field(24, ge=1, le=100, description="most confident test mistakes in the grid")
    seed: int = Field(0, ge=0, description="picks the sample: the same test images for every run")


class TrainConfig(Strict):
    name: str = "default"
    seed: int = Field(42, ge=0)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    trainer: TrainerConfig = TrainerConfig()
    mlflow: MlflowConfig = MlflowConfig()
    report: ReportConfig = ReportConfig()


# Hyperparameters a search space may tune; each maps onto a model or trainer value.
SEARCHABLE = {
    "conv_blocks": "number of conv blocks",
    "filters": "filters of each block (per block)",
    "convs": "conv layers in every block",
    "kernel": "kernel size of every block",
    "padding": "padding of every block",
    "batch_norm": "batch norm in every block",
    "block_dropout": "dropout after each block (per block)",
    "dense_units": "units of the dense layer",
    "dense_dropout": "dropout before the classifier",
    "augment": "flips and 1-pixel shifts on top of model.augment (perspective, zoom)",
    "optimizer": "optimizer",
    "learning_rate": "learning rate",
    "batch_size": "batch size",
    "epochs": "epochs of a trial",
}


class SearchParam(Strict):
    """One searchable dimension, as written in conf/search/*.yaml."""

    type: Literal["choice", "int", "float", "log_float", "boolean", "fixed"]
    values: Optional[list[Any]] = None
    value: Any = None
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    when: Optional[dict[str, list[Any]]] = Field(None, description="photo sweeps: searched only in trials where "
                                                 "this other entry took one of these values")

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
        return self


class TunerConfig(Strict):
    kind: Literal["random", "bayesian", "hyperband"] = "bayesian"
    max_trials: int = Field(10, ge=1)
    executions_per_trial: int = Field(1, ge=1)
    initial_points: int = Field(3, ge=1, description="bayesian: random trials before the model guides")
    max_epochs: int = Field(20, ge=1, description="hyperband: epochs of the longest trial")
    factor: int = Field(3, ge=2, description="hyperband: reduction factor between rounds")
    iterations: int = Field(1, ge=1, description="hyperband: full brackets to run")


PER_BLOCK = ("filters", "block_dropout")


class SweepConfig(Strict):
    name: str = "default"
    dir: str = "sweeps"
    fresh: bool = False
    search_minutes: float = Field(0, ge=0, description="no trial starts after this long (per invocation); 0: no limit")
    trial_minutes: float = Field(0, ge=0, description="a trial projected to take longer fails a few batches in; "
                                 "0: no limit")

    @field_validator("name")
    @classmethod
    def _plain(cls, name: str) -> str:
        """It names the folder under `dir` that keras-tuner deletes on a fresh start: `..` must not."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
            raise ValueError("must be a plain name: letters, digits, '_', '.', '-', not starting with '.' "
                             "(it names a folder under sweep.dir)")
        return name


class SelectionConfig(Strict):
    max_gap: float = Field(0.03, ge=0.0, le=1.0)
    alias: str = "best"
    retrain_epochs: int = Field(0, ge=0, description="0: register the winning trial's own model; "
                                "N: retrain its hyperparameters for N epochs first")
    retrain_minutes: float = Field(0, ge=0, description="fewer retrain epochs if N would take longer, "
                                   "at the trial's measured seconds per epoch; 0: no limit")

    def epochs_at(self, epoch_seconds: float | None) -> int:
        """`retrain_epochs`, fewer if that many would take longer than `retrain_minutes` at the
        pace the trial measured: a slow winner gets a shorter retrain, not a late sweep."""
        if not self.retrain_minutes or not epoch_seconds:
            return self.retrain_epochs
        return max(1, min(self.retrain_epochs, int(self.retrain_minutes * 60 // epoch_seconds)))


class DistributedConfig(Strict):
    """One sweep over several processes or machines: a chief serves keras-tuner's oracle at
    `address`, workers ask it for trials. `role: none` is the single-process sweep."""

    role: Literal["none", "chief", "worker"] = "none"
    address: Optional[str] = Field(None, description="HOST:PORT the chief listens on / workers connect to")
    tuner_id: Optional[str] = Field(None, description="worker name; null: worker-<host>-<pid>. "
                                    "A restarted worker with the same id resumes its trial")
    heartbeat: float = Field(2.0, gt=0.0, le=60.0, description="seconds between a worker's heartbeats")
    timeout: float = Field(30.0, gt=0.0, description="silence after which the chief hands a worker's trial "
                           "to another worker, and a worker gives up on a chief that went away")
    wait: float = Field(600.0, ge=0.0, description="seconds a worker waits for the chief to come up")
    threads: Optional[int] = Field(None, ge=1, le=1024, description="CPU threads for training; null: all")

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
        if tuner_id and "chief" in tuner_id:
            raise ValueError("must not contain 'chief' (keras-tuner reserves it for the chief)")
        return tuner_id

    @model_validator(mode="after")
    def _complete(self) -> "DistributedConfig":
        if self.role != "none" and not self.address:
            raise ValueError(f"role '{self.role}' needs distributed.address=HOST:PORT (the chief's)")
        if self.timeout <= self.heartbeat:
            raise ValueError(f"timeout {self.timeout:g} must exceed heartbeat {self.heartbeat:g}")
        return self


class ClusterConfig(Strict):
    """`cluster.workers=N`: a chief and N workers on this machine, started by one command."""

    workers: int = Field(0, ge=0, le=256, description="0: no cluster, the sweep runs in this process")
    port: int = Field(0, ge=0, le=65535, description="the chief's port; 0: a free one")
    restarts: int = Field(2, ge=0, description="times a worker that dies is started again")


class PhotoAugment(Strict):
    """Training-time changes to photo inputs, made by layers in the training graph (the
    logged model has none). Brightness and contrast keep a black background black."""

    flip: bool = False
    shift: float = Field(0.0, ge=0.0, le=0.5, description="translation, share of the side")
    zoom: float = Field(0.0, ge=0.0, le=0.5, description="zoom in (a crop) or out (a margin), share of the side")
    rotate: float = Field(0.0, ge=0.0, le=0.5, description="rotation, share of a full turn")
    perspective: float = Field(0.0, ge=0.0, le=0.5, description="corners moved by up to this share of the side")
    brightness: float = Field(0.0, ge=0.0, le=0.9, description="gain in [1 - b, 1 + b]")
    contrast: float = Field(0.0, ge=0.0, le=0.9, description="gamma in [1 - c, 1 + c]")


class FinetuneConfig(Strict):
    """How `fmnist.finetune` and photo sweeps train on a folder of the user's labelled photos."""

    base: str = Field("best", description="Fashion-MNIST model whose weights start the network: best | "
                      "models:/... | runs:/... | FILE.keras | none (from scratch, built from `model`)")
    trainable: Literal["all", "dense", "classifier"] = Field("all", description="what trains after the warm-up")
    warmup_epochs: int = Field(0, ge=0, le=1000, description="epochs with only the new classifier training")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="before the new classifier")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    augment: PhotoAugment = PhotoAugment()
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5, description="of each class, when no validation folder is given")
    registered_model: str = "fmnist-photos"
    cache: str = Field("~/.cache/fmnist/photos", description="prepared photo inputs, by content and photo settings")
    workers: int = Field(2, ge=1, le=64, description="threads preparing photos")

    @property
    def from_scratch(self) -> bool:
        return self.base == "none"


class Config(TrainConfig):
    """Everything `fmnist.train`, `fmnist.sweep` and `fmnist.finetune` read: one composed
    config serves all, so `experiment=quick` means "quick" for each command. With `photos`
    set, a sweep fine-tunes on that folder instead of training on Fashion-MNIST."""

    photos: Optional[str] = Field(None, description="a folder of class subfolders of photos")
    validation: Optional[str] = Field(None, description="a second such folder to select on; null: a split of photos")
    photo: PhotoSettings = PhotoSettings()
    finetune: FinetuneConfig = FinetuneConfig()
    search: dict[str, SearchParam] = {}

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
    tuner: TunerConfig = TunerConfig()
    sweep: SweepConfig = SweepConfig()
    selection: SelectionConfig = SelectionConfig()
    distributed: DistributedConfig = DistributedConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _searchable(self) -> "Config":
        if self.photos:
            check_start(self)
            return self
        unknown = sorted(set(self.search) - set(SEARCHABLE))
        if any("." in name for name in unknown):
            raise ValueError(f"search.{unknown[0]}: a photo sweep's entry; give the photos: photos=DIR "
                             "(a folder with one subfolder of labelled photos per class)")
        if unknown:
            raise ValueError(f"search.{unknown[0]}: unknown hyperparameter; allowed: {', '.join(SEARCHABLE)}")
        check_ranges(self, {name: (path, self.search[name]) for name, path in TRAINER_PATHS.items()
                            if name in self.search})
        if self.tuner.kind == "hyperband" and "epochs" in self.search:
            raise ValueError("search.epochs: Hyperband sets epochs itself (tuner.max_epochs); remove it from the space")
        if self.cluster.workers and self.distributed.role != "none":
            raise ValueError("cluster.workers starts its own chief and workers; leave distributed.role at none")
        return self


def check_paths(cfg: Config) -> None:
    """A photo sweep's space names config paths (`photo.size`), each of which must exist and
    take every value the entry can give it."""
    dumped = cfg.model_dump()
    for path, p in cfg.search.items():
        for key in [path, *(p.when or {})]:
            node = dumped
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ConfigError(f"search.{key}: not a config path; photo sweeps search paths such as "
                                      "finetune.base, photo.size, model.learning_rate (experiment=finetune)")
                node = node[part]
    declared: list[str] = []
    for path, p in cfg.search.items():
        if p.when and (len(p.when) != 1 or next(iter(p.when)) not in declared):
            raise ConfigError(f"search.{path}.when: name one entry declared above it "
                              "(e.g. {finetune.base: [best]})")
        declared.append(path)
    if cfg.tuner.kind == "hyperband":
        raise ConfigError("tuner.kind=hyperband: photo sweeps take random or bayesian (trials set their epochs)")
    try:
        check_ranges(cfg, {path: (path, p) for path, p in cfg.search.items()})
    except ValueError as e:
        raise ConfigError(str(e)) from None


# Searchable names the trainer reads directly (the model's are checked as each trial's model is built),
# checked against the trainer's ranges before any training.
TRAINER_PATHS = {"epochs": "trainer.epochs", "batch_size": "trainer.batch_size"}


def candidates(p: SearchParam) -> list[Any]:
    """The values an entry can give, or its ends: what must all pass the target's range."""
    if p.type == "choice":
        return list(p.values)
    if p.type == "fixed":
        return [p.value]
    if p.type == "boolean":
        return [False, True]
    return [int(p.min), int(p.max)] if p.type == "int" else [p.min, p.max]


def check_ranges(cfg: BaseModel, entries: dict[str, tuple[str, SearchParam]]) -> None:
    """Each entry's values validated where they land (`trainer.epochs`), so an epochs of 0 in a
    space fails here, with one line, and not as a silently different trial."""
    for name, (path, p) in entries.items():
        *parents, leaf = path.split(".")
        owner = cfg
        for part in parents:
            owner = getattr(owner, part)
        for value in candidates(p):
            try:
                type(owner).model_validate({**owner.model_dump(), leaf: value}, context={"side": None})
            except ValidationError as e:
                msg = e.errors()[0]["msg"].removeprefix("Value error, ")
                raise ValueError(f"search.{name}: {value!r} is out of range for {path} ({msg})") from None


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
    """The keys allowed at `loc`, found by walking the schema's field annotations."""
    for part in loc:
        if isinstance(part, int) or part not in schema.model_fields:
            continue  # a list index or a dict key: the item's schema was taken at its field
        annotation = schema.model_fields[part].annotation
        args = getattr(annotation, "__args__", (annotation,))  # list[X], dict[str, X], Optional[X]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            schema = models[0]
    return ", ".join(schema.model_fields)


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _one_line(schema: type[BaseModel], err: dict[str, Any], prefix: str) -> str:
    loc = tuple(p for p in err["loc"] if p not in ("function-after",))
    key = prefix + _dotted(loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed keys: {_allowed(schema, loc[:-1])}"
    if not loc:
        return msg
    if isinstance(err.get("input"), dict):
        return f"{key}: {msg}"
    return f"{key}={err.get('input')!r}: {msg}"


def validate(schema: type[M], cfg: DictConfig | dict, prefix: str = "") -> M:
    """Check `cfg` against `schema`; raise ConfigError listing every problem, one per line."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    raw = {k: v for k, v in raw.items() if k != "hydra"}
    try:
        return schema.model_validate(raw, context=input_side(raw))
    except ValidationError as e:
        raise ConfigError("\n".join(_one_line(schema, err, prefix) for err in e.errors())) from None
