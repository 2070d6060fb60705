"""The kinds of sweep, in one place: the table from name to kind, the one rule that picks a
config's kind, and the `python -m fmnist.sweep` job, which hands that kind to the engine
(fmnist/search/sweeping.py). A new kind is a SweepKind (fmnist/search/kind.py) added here."""

from __future__ import annotations

from fmnist.config import Config
from fmnist.kinds.fashion import FashionKind
from fmnist.kinds.photos import PhotoKind
from fmnist.search import sweeping
from fmnist.search.kind import SweepKind

KINDS: dict[str, SweepKind] = {kind.name: kind for kind in (FashionKind(), PhotoKind())}


def kind_for(cfg: Config) -> SweepKind:
    """A config that names a folder of labelled photos (`photos=DIR`) sweeps fine-tuning on
    them; any other sweeps Fashion-MNIST models."""
    return KINDS["photos" if cfg.photos else "fashion"]


def sweep(cfg: Config) -> int:
    """`python -m fmnist.sweep`: the engine, with the config's kind."""
    return sweeping.sweep(cfg, kind_for(cfg))
