"""The Model Registry as a sweep or a fine-tuning run meets it: a new version, and the alias
(`best`) moved to it only if it beats the version holding it, measured now on the same images
as the newcomer (`register_if_better`, `settle`, `finish_comparison`); how a holder is
measured, for either kind of model (`keras_holder_score`, `photo_holder_score`).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Optional

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.config import PhotoSettings
from fmnist.errors import NoModelError
from fmnist.serving.loading import Classifier, load_classifier
from fmnist.training.fitting import accuracy

# A version's score on the newcomer's images; None: not comparable (the alias moves).
HolderScore = Callable[[str], Optional[float]]


def alias_holder(client: MlflowClient, name: str, alias: str):
    """The version `alias` points to; None: no version holds it (or no such model)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register_if_better(model_uri: str, name: str, alias: str, score: float, tags: dict[str, Any],
                       holder_score: HolderScore) -> tuple[str, bool, Optional[float]]:
    """Register a new version; move `alias` to it only if `score` beats the holder's score
    measured now, by `holder_score(version)`, on the same images as `score`: a number logged
    by another run on another split would not compare. None from it (say, other classes)
    moves the alias, and so does a holder that cannot be loaded or measured (`comparable`).
    The holder is measured before the version exists, so a process killed while it loads a
    big or foreign model leaves nothing registered; the active run (a sweep's parent) is
    tagged `registered_version` as soon as it exists, so a rerun of a closing that failed
    after that registers nothing twice (`finish_comparison`). The version's tag
    `compared_with` keeps each holder's score on those images.
    Returns (version, moved, the score of the holder it was last compared with)."""
    client = MlflowClient()
    measure = comparable(name, holder_score)
    holder = alias_holder(client, name, alias)
    scores = {} if holder is None else {str(holder.version): measure(str(holder.version))}
    version = str(mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()}).version)
    if mlflow.active_run():
        mlflow.set_tag("registered_version", version)
    moved, held = compare(client, name, alias, version, score, measure, scores)
    return version, moved, held


def finish_comparison(name: str, alias: str, version: str,
                      holder_score: HolderScore) -> Optional[bool]:
    """A rerun of a closing that registered `version` and failed before comparing it (it has
    no `compared_with` tag) compares it now, with the `val_accuracy` it was registered with;
    None when it was compared already: the alias moved then or not, and that stands."""
    client = MlflowClient()
    tags = client.get_model_version(name, version).tags
    if "compared_with" in tags or "val_accuracy" not in tags:
        return None
    return compare(client, name, alias, version, float(tags["val_accuracy"]), comparable(name, holder_score))[0]


def compare(client: MlflowClient, name: str, alias: str, version: str, score: float,
            holder_score: HolderScore,
            scores: Optional[dict[str, Optional[float]]] = None) -> tuple[bool, Optional[float]]:
    """`settle`, then the scores kept on the version: (moved, the last holder's score)."""
    moved, scores, last = settle(client, name, alias, version, score, holder_score, scores)
    client.set_model_version_tag(name, version, "compared_with", json.dumps(scores))
    return moved, scores.get(last)


def comparable(name: str, holder_score: HolderScore) -> HolderScore:
    """`holder_score` where any failure to load or measure a holder (a Lambda layer that
    safe mode refuses, another input, a file gone from the store) is one warning line and
    None, not comparable: a broken holder would otherwise end every later sweep at its
    closing and keep the alias for ever."""

    def score(version: str) -> Optional[float]:
        try:
            return holder_score(version)
        except Exception as e:  # noqa: BLE001 - whatever the model holds, the sweep must close
            reason = (str(e).splitlines() or [""])[0]
            print(f"warning: models:/{name}/{version} cannot be loaded or measured ({type(e).__name__}: {reason}): "
                  "not comparable, the alias moves", file=sys.stderr, flush=True)
            return None

    return score


def settle(client: MlflowClient, name: str, alias: str, version: str, score: float,
           holder_score: HolderScore,
           scores: Optional[dict[str, Optional[float]]] = None) -> tuple[bool, dict[str, Optional[float]], str]:
    """Move `alias` to `version` unless its holder scores at least `score`, reading the alias
    again after scoring a holder and after each move: two sweeps that close at once each
    read, compare and set, and without the second read the later set would win, better or
    not. Each holder is scored once (`scores`: those scored already). A holder this process
    moved the alias from that comes back was put back by a process that finds it better on
    its own images: it keeps the alias, so two processes never pass it back and forth.
    Returns (moved, each holder's score, the holder compared last)."""
    scores = dict(scores or {})
    overruled: set[str] = set()
    last = ""
    while True:
        holder = alias_holder(client, name, alias)
        current = "" if holder is None else str(holder.version)
        if current == version:
            return True, scores, last
        if current and current not in scores:
            scores[current] = holder_score(current)  # slow: the alias may move meanwhile
            continue
        last, held = current, scores.get(current)
        if current in overruled or (held is not None and held >= score):
            return False, scores, last
        overruled.add(current)
        client.set_registered_model_alias(name, alias, version)


class NotComparable(Exception):
    """A holder that loads but cannot be measured on the newcomer's images (other inputs, other classes)."""


def measured_on(name: str, images: Callable[[Classifier], tuple[np.ndarray, np.ndarray]]) -> HolderScore:
    """`holder_score` that loads a version as `fmnist.predict` does (its classes and photo steps
    with it) and measures it on `images(classifier)`, as the newcomer's `val_accuracy` was
    measured. A version that cannot be loaded, or that `images` finds not comparable
    (NotComparable), is one note and None: the alias moves."""

    def score(version: str) -> Optional[float]:
        ref = f"models:/{name}/{version}"
        try:
            classifier = load_classifier(ref, name)
            x, y = images(classifier)
        except (NoModelError, NotComparable) as e:
            print(f"note: {ref}: {str(e).removeprefix(ref + ': ')}: not comparable, the alias moves", file=sys.stderr)
            return None
        return accuracy(classifier.model, x, y)

    return score


def keras_holder_score(name: str, x: np.ndarray, y: np.ndarray) -> HolderScore:
    """`holder_score` for a Fashion-MNIST sweep: a version's model on the challenger's
    validation images `x` (fitting.accuracy measured the challenger's own val_accuracy on them)."""

    def images(classifier: Classifier) -> tuple[np.ndarray, np.ndarray]:
        takes = tuple(classifier.model.input_shape[1:])
        if takes != x.shape[1:]:
            raise NotComparable(f"takes {takes} inputs, not {x.shape[1:]}")
        return x, y

    return measured_on(name, images)


def photo_holder_score(name: str, classes: tuple[str, ...],
                       validation: Callable[[Optional[PhotoSettings]], tuple[np.ndarray, np.ndarray]]) -> HolderScore:
    """`holder_score` for a model of a user's photos (a photo sweep, `fmnist.finetune`): a
    version with the same `classes`, on the same validation photos, each prepared with the
    version's own photo steps (`validation(steps)`; None: a model that carries none)."""

    def images(classifier: Classifier) -> tuple[np.ndarray, np.ndarray]:
        if classifier.classes != tuple(classes):
            raise NotComparable(f"has other classes ({', '.join(classifier.classes)})")
        return validation(classifier.photo)

    return measured_on(name, images)
