"""The schema every composed config is checked against before any data is loaded.

Hydra composes YAML; pydantic then checks each value's type and range and rejects
unknown keys. Each problem becomes one line that names the key and what is allowed,
so a typo costs a second, not a training run. Every value lives in the YAML (the package
`fmnist.conf`) and nowhere else: these models hold types, ranges and cross-field rules but
no defaults, so the two cannot disagree (a key the YAML lacks fails validation).

By concern, bottom up: `paths` (config paths as a search space names them) and `space` (the
search-space entries and their checks) are leaves; `model`, `training`, `photos`, `sweep`
and `commands` are the schemas by section; `validation` turns pydantic's errors into lines;
`loading` finds the YAML and composes a command's config. Importing any of them imports
pydantic, OmegaConf and Hydra only, never the training stack. The names below are the ones
the rest of fmnist uses.
"""

from fmnist.config.commands import ModelRef, PredictConfig, PredictSettings, ReportCommand
from fmnist.config.loading import from_yaml, packaged
from fmnist.config.model import SIZE, Augment, ConvBlock, DenseLayer, ModelConfig, input_side
from fmnist.config.photos import FinetuneConfig, Limits, Look, Mode, PhotoAugment, PhotoSettings
from fmnist.config.space import SearchParam, candidates
from fmnist.config.sweep import (
    TOKEN_ENV,
    ClusterConfig,
    Config,
    DistributedConfig,
    PrunerConfig,
    SelectionConfig,
    SweepConfig,
    TunerConfig,
)
from fmnist.config.training import DataConfig, MlflowConfig, ReportConfig, TrainConfig, TrainerConfig
from fmnist.config.validation import validate

__all__ = [
    "SIZE", "TOKEN_ENV", "Augment", "ClusterConfig", "Config", "ConvBlock", "DataConfig", "DenseLayer",
    "DistributedConfig", "FinetuneConfig", "Limits", "Look", "MlflowConfig", "Mode", "ModelConfig", "ModelRef",
    "PhotoAugment", "PhotoSettings", "PredictConfig", "PredictSettings", "ReportCommand", "ReportConfig",
    "PrunerConfig", "SearchParam", "SelectionConfig", "SweepConfig", "TrainConfig", "TrainerConfig", "TunerConfig",
    "candidates",
    "from_yaml", "input_side", "packaged", "validate",
]
