"""Every bad value is rejected with one line naming the key, before any data is loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

from fmnist import cli
from fmnist.config import Config, PredictConfig, ReportCommand, SearchParam, validate
from fmnist.errors import ConfigError
from tests.conftest import PHOTOS, REPO

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
        validate(Config, cli.compose("train", [override]))
    assert str(e.value).count("\n") == 0
    assert str(e.value).startswith(key) and allowed in str(e.value)


def test_conv_stack_that_shrinks_the_image_away():
    block = "{filters:8,convs:1,kernel:11,stride:1,padding:valid,pool:true,batch_norm:false,dropout:0.0}"
    cfg = cli.compose("train", [f"model.conv_blocks=[{block},{block}]"])
    with pytest.raises(ConfigError, match="shrinks the 28x28 input"):
        validate(Config, cfg)


CONF = REPO / "fmnist" / "conf"
# what an option needs beside it to make a whole config
NEEDS = {("search", "finetune"): [f"photos={PHOTOS}"], ("tuner", "hyperband"): ["~search.trainer.epochs"],
         ("experiment", "finetune"): [f"photos={PHOTOS}"]}


def models(schema: type[BaseModel]) -> set[type[BaseModel]]:
    """`schema` and every model its fields hold (lists, dicts, unions, optionals included)."""
    found, todo = set(), [schema]
    while todo:
        model = todo.pop()
        found.add(model)
        for field in model.model_fields.values():
            stack = [field.annotation]
            while stack:
                t = stack.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo += [] if t in found else [t]
                stack += list(getattr(t, "__args__", ()))
    return found


def test_every_default_is_in_the_yaml_and_nowhere_else():
    """The schema holds types and ranges only: a default there would be a second value that
    can disagree with the YAML. (A search entry's unset fields mean "not this kind", not a default.)"""
    with_defaults = {f"{m.__name__}.{name}" for m in models(Config) | models(PredictConfig) | models(ReportCommand)
                     if m is not SearchParam for name, f in m.model_fields.items() if not f.is_required()}
    assert not with_defaults


@pytest.mark.parametrize("group,option", sorted((p.parent.name, p.stem) for p in CONF.glob("*/*.yaml")))
def test_every_option_of_every_group_composes_and_validates(group, option):
    """Each YAML file is complete against the schema: no key missing, none unknown, every value in range."""
    cfg = validate(Config, cli.compose("train", [f"{group}={option}", *NEEDS.get((group, option), [])]))
    if group == "experiment":
        assert cfg.name == option


@pytest.mark.parametrize("command,overrides", [("predict", ["images=a.jpg"]), ("report", ["run=abc"])])
def test_the_other_commands_configs_validate(command, overrides):
    assert isinstance(cli.config(command, overrides), cli.COMMANDS[command].schema)


def test_a_photo_sweep_without_photos_says_to_give_them():
    with pytest.raises(ConfigError, match="search.finetune.[a-z.]+: a photo sweep.s entry; give the photos"):
        validate(Config, cli.compose("train", ["experiment=finetune"]))


def test_cli_fails_before_loading_data(tmp_path):
    """A bad value exits 2 with one line even when the data dir is empty: nothing was loaded."""
    out = subprocess.run(
        [sys.executable, "-m", "fmnist.train", "model.conv_blocks.0.filters=0", f"data.dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        "error: config: model.conv_blocks[0].filters=0: Input should be greater than or equal to 1"
    ]
    assert not (tmp_path / "mlflow.db").exists(), "no run may be created for a bad config"


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", "a/b", ""])
def test_a_sweep_name_must_be_a_plain_name(name):
    """keras-tuner deletes <sweep.dir>/<sweep.name> on a fresh start: `..` would be the working folder."""
    with pytest.raises(ConfigError, match="sweep.name="):
        validate(Config, cli.compose("train", [f"sweep.name='{name}'"]))


def test_a_config_error_imports_neither_tensorflow_nor_grpc(tmp_path):
    """The one-line error comes before the training stack: a typo costs a second."""
    code = ("import sys\nsys.argv = ['fmnist.train', 'trainer.epochs=0']\nfrom fmnist.train import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, [m for m in ('tensorflow', 'keras', 'grpc', 'keras_tuner') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr
