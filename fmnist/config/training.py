"""What one training run reads (`fmnist.train`): the data, the model, how it trains, where
MLflow logs it, and the pictures it draws. A sweep's config (fmnist.config.sweep) extends it."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from fmnist.config.model import ModelConfig
from fmnist.config.strict import Strict


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
