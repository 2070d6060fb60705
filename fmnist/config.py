"""The schema every composed config is checked against before any data is loaded.

Hydra composes YAML; pydantic then checks each value's type and range and rejects
unknown keys. Each problem becomes one line that names the key and what is allowed,
so a typo costs a second, not a training run.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, TypeVar

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Padding = Literal["same", "valid"]
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop"]


class ConfigError(ValueError):
    """A bad config value; one line per problem, meant for the user."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class ConvBlock(Strict):
    filters: int = Field(32, ge=1, le=1024)
    kernel: int = Field(3, ge=1, le=11)
    padding: Padding = "same"
    pool: bool = True
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class DenseLayer(Strict):
    units: int = Field(128, ge=1, le=8192)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class Augment(Strict):
    """Training-time augmentation; all off by default (the original project had none)."""

    flip: bool = False
    shift: float = Field(0.0, ge=0.0, le=0.5)
    zoom: float = Field(0.0, ge=0.0, le=0.5)


class ModelConfig(Strict):
    conv_blocks: list[ConvBlock] = []
    dense: list[DenseLayer] = [DenseLayer()]
    augment: Augment = Augment()
    optimizer: OptimizerName = "adam"
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _fits_28x28(self) -> "ModelConfig":
        """Valid padding and pooling shrink the image; catch a stack that shrinks it away."""
        size = 28
        for i, b in enumerate(self.conv_blocks):
            size = size - b.kernel + 1 if b.padding == "valid" else size
            size = size // 2 if b.pool else size
            if size < 1:
                raise ValueError(f"conv_blocks[{i}] shrinks the 28x28 input to nothing; use padding 'same' or fewer blocks")
        return self


class DataConfig(Strict):
    dir: Optional[str] = None
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    subset: Optional[int] = Field(None, ge=100, le=60000)


class TrainerConfig(Strict):
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=8192)
    early_stopping: int = Field(0, ge=0, description="patience in epochs on val_loss; 0 turns it off")
    verbose: int = Field(2, ge=0, le=2)


class MlflowConfig(Strict):
    tracking_uri: Optional[str] = None
    experiment: str = "fmnist"
    run_name: Optional[str] = None
    log_model: bool = True


class TrainConfig(Strict):
    name: str = "default"
    seed: int = Field(42, ge=0)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    trainer: TrainerConfig = TrainerConfig()
    mlflow: MlflowConfig = MlflowConfig()


M = TypeVar("M", bound=BaseModel)


def _allowed(schema: type[BaseModel], loc: tuple) -> str:
    """The keys allowed at `loc`, found by walking the schema's field annotations."""
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = schema.model_fields[part].annotation
        inner = getattr(annotation, "__args__", (annotation,))[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            schema = inner
    return ", ".join(schema.model_fields)


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _one_line(schema: type[BaseModel], err: dict[str, Any], prefix: str) -> str:
    loc = tuple(p for p in err["loc"] if p not in ("function-after",))
    key = prefix + _dotted(loc)
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed keys: {_allowed(schema, loc[:-1])}"
    return f"{key}={err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}"


def validate(schema: type[M], cfg: DictConfig | dict, prefix: str = "") -> M:
    """Check `cfg` against `schema`; raise ConfigError listing every problem, one per line."""
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    raw = {k: v for k, v in raw.items() if k != "hydra"}
    try:
        return schema.model_validate(raw)
    except ValidationError as e:
        raise ConfigError("\n".join(_one_line(schema, err, prefix) for err in e.errors())) from None
