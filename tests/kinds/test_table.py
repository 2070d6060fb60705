"""The kinds of sweep, registered in one place (fmnist/kinds/__init__.py): a config's kind, and
what each kind says about itself."""

from __future__ import annotations

from fmnist.config.loading import checked
from fmnist.kinds import KINDS, kind_for
from fmnist.kinds.fashion import FashionKind
from fmnist.kinds.photos import PhotoKind
from tests.conftest import PHOTOS


def test_a_config_with_photos_sweeps_photos_and_any_other_fashion_mnist():
    assert isinstance(kind_for(checked("train", ["experiment=finetune", f"photos={PHOTOS}"])), PhotoKind)
    for experiment in ("quick", "photos"):  # experiment=photos: Fashion-MNIST trained to suit photos
        assert isinstance(kind_for(checked("train", [f"experiment={experiment}"])), FashionKind)


def test_each_kind_is_in_the_table_under_its_name_and_only_fashion_mnist_has_a_test_set():
    assert {name: kind.test_set for name, kind in KINDS.items()} == {"fashion": True, "photos": False}
    assert all(kind.name == name for name, kind in KINDS.items())


def test_each_kind_registers_where_its_config_says():
    cfg = checked("train", ["experiment=finetune", f"photos={PHOTOS}", "mlflow.registered_model=a",
                            "finetune.registered_model=b"])
    assert (KINDS["fashion"].registered_model(cfg), KINDS["photos"].registered_model(cfg)) == ("a", "b")


def test_the_closing_table_says_what_each_kind_scored_on():
    cfg = checked("train", ["experiment=finetune", f"photos={PHOTOS}"])
    assert KINDS["photos"].score({"val_accuracy": 0.8}, cfg) == f"validation accuracy 0.8000 on a split of {PHOTOS}"
    fashion = KINDS["fashion"]
    assert fashion.score({"test_accuracy": 0.9, "test_margin": 0.006}, cfg) == \
        "test accuracy 0.9000 ± 0.0060 (95% interval)"
    assert fashion.score({"test_accuracy": 0.9}, cfg) == "test accuracy 0.9000", "a resumed sweep: no margin"
