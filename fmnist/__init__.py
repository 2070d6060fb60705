"""fmnist: hyperparameter sweeps for Fashion-MNIST CNNs, tracked in MLflow."""

import os

# TensorFlow's C++ start-up chatter hides our one-line errors; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
