"""How a photo becomes a model input (`photo`, `limits`, predict's `Mode`) and how a model is
fine-tuned on a folder of the user's photos (`finetune`). The served model reads the first two
from the YAML it was logged with, so they stand alone: no training or sweep section needed."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator

from fmnist.config.strict import Strict

Mode = Literal["auto", "photo", "fmnist"]  # predict: how an input is prepared
Look = Literal["fmnist", "colour", "plain"]  # photo.input: what a model takes
IMAGENET = "imagenet:"  # finetune.base=imagenet:NAME: a keras.applications network, ImageNet weights


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
    """The photo steps' knobs (their values: conf/photo/default.yaml).
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
                      "models:/... | runs:/... | FILE.keras | imagenet:NAME (a keras.applications network "
                      "with ImageNet weights) | none (from scratch, built from `model`)")
    trainable: Literal["all", "dense", "classifier"] = Field(description="what trains after the warm-up")
    warmup_epochs: int = Field(ge=0, le=1000, description="epochs with only the new classifier training")
    dropout: float = Field(ge=0.0, lt=1.0, description="before the new classifier")
    label_smoothing: float = Field(ge=0.0, lt=1.0)
    augment: PhotoAugment
    val_fraction: float = Field(gt=0.0, lt=0.5, description="of each class, when no validation folder is given")
    registered_model: str
    cache: str = Field(description="prepared photo inputs, by content and photo settings")
    workers: int = Field(ge=1, le=64, description="threads preparing photos")
    calibrate: bool = Field(description="fit a temperature on the selection split so the logged "
                            "model's confidences match its accuracy (fmnist/training/calibration.py)")

    @field_validator("base")
    @classmethod
    def _imagenet_name(cls, v: str) -> str:
        """Only the form of `imagenet:NAME` here: whether keras.applications has NAME is asked
        when the network is built (fmnist/photos/imagenet.py), so a config error costs no Keras."""
        if v.startswith(IMAGENET) and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", v.removeprefix(IMAGENET)):
            raise ValueError(f"name a keras.applications network after {IMAGENET}, e.g. {IMAGENET}MobileNetV3Small")
        return v

    @property
    def from_scratch(self) -> bool:
        return self.base == "none"

    @property
    def imagenet(self) -> Optional[str]:
        """NAME of an `imagenet:NAME` start (a keras.applications network), else None."""
        return self.base.removeprefix(IMAGENET) if self.base.startswith(IMAGENET) else None
