"""The schemas of the two commands that read a trained model instead of training one:
`fmnist.predict` (photos in, a table and a contact sheet out) and `fmnist.report` (a run's
pictures drawn again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import Field, field_validator, model_validator

from fmnist.config.photos import Limits, Mode, PhotoSettings
from fmnist.config.strict import Strict
from fmnist.config.training import MlflowConfig, ReportConfig


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
