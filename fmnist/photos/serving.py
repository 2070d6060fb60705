"""Compatibility, for models logged before fmnist/serving/ existed (issue 23): each carries its
own copy of pyfunc.py, which `mlflow models serve` runs and which imports PhotoClassifier from
here. Nothing in fmnist imports this module; it can go once no such model is served (logging
one again, say by the next sweep, makes a copy that imports fmnist.serving.classifier)."""

from fmnist.serving.classifier import PhotoClassifier

__all__ = ["PhotoClassifier"]
