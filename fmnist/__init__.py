"""fmnist: hyperparameter sweeps for Fashion-MNIST CNNs, tracked in MLflow."""

import os

# TensorFlow's C++ start-up chatter hides our one-line errors; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# MLflow draws a progress bar on stderr for every artifact download once tqdm is installed (Optuna
# brings it): a sweep or a predict run would print one per model it loads. Our lines say enough.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
