"""The errors a user can cause, all from one base class. Each carries the label and exit
status the command line prints it with, so `fmnist.cli` catches `FmnistError` alone and
printing a config error imports neither TensorFlow nor gRPC."""

from __future__ import annotations

# exit status: 0 done, 1 the job failed (bad data, nothing predicted), 2 usage / config error
EXIT_FAILED, EXIT_USAGE = 1, 2


class FmnistError(Exception):
    """An expected failure; its message is one line per problem, meant for the user."""

    label, exit_code = "error", EXIT_FAILED


class ConfigError(FmnistError, ValueError):
    """A bad config value, found before any training (or when a sweep resumes or joins a chief)."""

    label, exit_code = "config", EXIT_USAGE


class DataError(FmnistError, RuntimeError):
    """Fashion-MNIST or a photo folder is missing or corrupt."""

    label = "data"


class DistributedError(FmnistError, RuntimeError):
    """The chief cannot be reached or turned this worker away."""

    label = "distributed"


class SweepError(FmnistError, RuntimeError):
    """A search that cannot go on: every trial failed; the message says why the last one did."""

    label = "sweep"


class StoreError(FmnistError, RuntimeError):
    """The MLflow store cannot take what a run logs (an artifact folder that is not writable)."""

    label = "mlflow"


class NoModelError(FmnistError, LookupError):
    """A model reference points at nothing; the message says what to do."""

    label = "model"


class ReportError(FmnistError, RuntimeError):
    """The run or model to report on cannot be found or read."""

    label = "report"


class ImageError(FmnistError, ValueError):
    """One input that cannot become a model input: reported on its row, never fatal to a run."""

    label = "image"
