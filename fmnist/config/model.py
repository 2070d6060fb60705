"""The network `fmnist.training.model.build_model` builds: conv blocks, dense layers, the
training-time augmentation, the optimizer. A photo model built from scratch uses it too, at
its own input side (`input_side`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from fmnist.config.strict import Strict

SIZE = 28  # Fashion-MNIST's side
Padding = Literal["same", "valid"]
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop"]


class ConvBlock(Strict):
    filters: int = Field(ge=1, le=1024)
    convs: int = Field(ge=1, le=4, description="conv layers in the block (2: VGG style)")
    kernel: int = Field(ge=1, le=11)
    stride: int = Field(ge=1, le=4, description="of the block's first conv (2: a cheap stem for large inputs)")
    padding: Padding
    pool: bool
    batch_norm: bool
    residual: bool = Field(False, description="the block's input added to its convs' output (a 1x1 conv "
                           "where the shape changes), as in a ResNet: deeper photo networks still train")
    dropout: float = Field(ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _residual_keeps_the_shape(self) -> ConvBlock:
        if self.residual and self.padding != "same":
            raise ValueError("a residual block needs padding 'same' (its input is added to its output)")
        return self


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


def input_side(raw: dict[str, Any]) -> dict[str, int | None]:
    """The validation context for a raw config: the side of the input `model` is built for.
    A photo model from scratch takes `photo.size`; one that starts from Fashion-MNIST weights
    builds no `model` (None: nothing to check); everything else takes 28x28."""
    base = (raw.get("finetune") or {}).get("base")
    if base == "none":
        return {"side": (raw.get("photo") or {}).get("size", SIZE)}
    return {"side": None if raw.get("photos") else SIZE}
