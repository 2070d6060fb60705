"""Reports a person looks at, logged to MLflow as PNGs with the data behind each.

`log_run_reports` draws one trained model's learning curves, confusion matrix, most
confident mistakes and embeddings; `log_sweep_reports` draws a sweep's trials.
"""

from fmnist.reports.run import log_run_reports
from fmnist.reports.sweep import log_sweep_reports

__all__ = ["log_run_reports", "log_sweep_reports"]
