"""Every bad value is rejected with one line naming the key, before any data is loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fmnist.config import ConfigError, Config, validate
from tests.conftest import PHOTOS, REPO, compose_cfg

BAD = [
    ("model.conv_blocks.0.filters=0", "model.conv_blocks[0].filters=0", "greater than or equal to 1"),
    ("model.conv_blocks.1.dropout=1.2", "model.conv_blocks[1].dropout=1.2", "less than 1"),
    ("model.conv_blocks.0.padding=full", "model.conv_blocks[0].padding='full'", "'same' or 'valid'"),
    ("trainer.epochs=-1", "trainer.epochs=-1", "greater than or equal to 1"),
    ("+trainer.epoch=3", "trainer.epoch: unknown key", "epochs, batch_size"),
    ("model.optimizer=adamax", "model.optimizer='adamax'", "'adam', 'adamw', 'sgd' or 'rmsprop'"),
    ("data.val_fraction=0", "data.val_fraction=0", "greater than 0"),
    ("trainer.batch_size=ten", "trainer.batch_size='ten'", "valid integer"),
]


@pytest.mark.parametrize("override,key,allowed", BAD)
def test_bad_value_is_one_line_naming_key(override, key, allowed):
    with pytest.raises(ConfigError) as e:
        validate(Config, compose_cfg("config", [override]))
    assert str(e.value).count("\n") == 0
    assert str(e.value).startswith(key) and allowed in str(e.value)


def test_conv_stack_that_shrinks_the_image_away():
    cfg = compose_cfg("config", ["model.conv_blocks=[{kernel:11,padding:valid},{kernel:11,padding:valid}]"])
    with pytest.raises(ConfigError, match="shrinks the 28x28 input"):
        validate(Config, cfg)


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "experiments").glob("*.yaml")))
def test_every_experiment_is_valid(name):
    photos = [f"photos={PHOTOS}"] if name == "finetune" else []
    assert validate(Config, compose_cfg("config", [f"experiment={name}", *photos])).name == name


def test_a_photo_sweep_without_photos_says_to_give_them():
    with pytest.raises(ConfigError, match="search.finetune.[a-z.]+: a photo sweep.s entry; give the photos"):
        validate(Config, compose_cfg("config", ["experiment=finetune"]))


def test_cli_fails_before_loading_data(tmp_path):
    """A bad value exits 2 with one line even when the data dir is empty: nothing was loaded."""
    out = subprocess.run(
        [sys.executable, "-m", "fmnist.train", "model.conv_blocks.0.filters=0", f"data.dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 2
    assert [l for l in out.stderr.splitlines() if l.startswith("error:")] == [
        "error: config: model.conv_blocks[0].filters=0: Input should be greater than or equal to 1"
    ]
    assert not (tmp_path / "mlflow.db").exists(), "no run may be created for a bad config"


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", "a/b", ""])
def test_a_sweep_name_must_be_a_plain_name(name):
    """keras-tuner deletes <sweep.dir>/<sweep.name> on a fresh start: `..` would be the working folder."""
    with pytest.raises(ConfigError, match="sweep.name="):
        validate(Config, compose_cfg("config", [f"sweep.name='{name}'"]))
