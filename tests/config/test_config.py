"""Every bad value is rejected with one line naming the key, before any data is loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import BaseModel

from fmnist.config import Config, Limits, PhotoSettings, PredictConfig, ReportCommand, SearchParam, validate
from fmnist.config.loading import COMMANDS, checked, compose
from fmnist.config.strict import Strict
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
        validate(Config, compose("train", [override]))
    assert str(e.value).count("\n") == 0
    assert str(e.value).startswith(key) and allowed in str(e.value)


def test_conv_stack_that_shrinks_the_image_away():
    block = "{filters:8,convs:1,kernel:11,stride:1,padding:valid,pool:true,batch_norm:false,dropout:0.0}"
    cfg = compose("train", [f"model.conv_blocks=[{block},{block}]"])
    with pytest.raises(ConfigError, match="shrinks the 28x28 input"):
        validate(Config, cfg)


CONF = REPO / "conf"  # conf/experiment is the link to experiments/
# what an option needs beside it to make a whole config
NEEDS = {("search", "finetune"): [f"photos={PHOTOS}"], ("tuner", "hyperband"): ["pruner=none"],
         ("experiment", "finetune"): [f"photos={PHOTOS}"]}


def models(*roots: type[BaseModel]) -> set[type[BaseModel]]:
    """The `roots` and every model their fields hold (lists, dicts, unions, optionals included)."""
    found, todo = set(), list(roots)
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


def subclasses(cls: type) -> set[type]:
    return {cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))}


# A key added to a list item (a conv block) has no YAML default to live in: every block written
# before it (in YAML, in commands, in logged config.yaml files) means "off".
LIST_ITEM_ADDITIONS = {"ConvBlock.residual"}


def test_every_default_is_in_the_yaml_and_nowhere_else():
    """The schema holds types and ranges only: a default there would be a second value that
    can disagree with the YAML. (A search entry's unset fields mean "not this kind", not a default.)
    Every schema: what each command's holds, and every one a section module of fmnist.config defines."""
    every = models(*(c.schema for c in COMMANDS.values())) | subclasses(Strict)
    assert every >= {Config, PredictConfig, ReportCommand, SearchParam, Limits, PhotoSettings}
    with_defaults = {f"{m.__name__}.{name}" for m in every
                     if m is not SearchParam for name, f in m.model_fields.items() if not f.is_required()}
    assert with_defaults == LIST_ITEM_ADDITIONS


@pytest.mark.parametrize("group,option", sorted((p.parent.name, p.stem) for p in CONF.glob("*/*.yaml")))
def test_every_option_of_every_group_composes_and_validates(group, option):
    """Each YAML file is complete against the schema: no key missing, none unknown, every value in range."""
    cfg = validate(Config, compose("train", [f"{group}={option}", *NEEDS.get((group, option), [])]))
    if group == "experiment":
        assert cfg.name == option


@pytest.mark.parametrize("command,overrides", [("predict", ["images=a.jpg"]), ("report", ["run=abc"])])
def test_the_other_commands_configs_validate(command, overrides):
    assert isinstance(checked(command, overrides), COMMANDS[command].schema)


def test_a_photo_sweep_without_photos_says_to_give_them():
    with pytest.raises(ConfigError, match="search.finetune.[a-z.]+: a photo sweep.s entry; give the photos"):
        validate(Config, compose("train", ["experiment=finetune"]))


def test_an_ensemble_is_refused_for_the_fashion_mnist_kind_in_one_line():
    with pytest.raises(ConfigError, match="selection.ensemble is for photo sweeps") as e:
        validate(Config, compose("train", ["selection.ensemble=2"]))
    assert str(e.value).count("\n") == 0 and str(e.value).startswith("selection.ensemble=2: ")
    photos = validate(Config, compose("train", ["experiment=finetune", f"photos={PHOTOS}", "selection.ensemble=3"]))
    assert photos.selection.ensemble == 3


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
        validate(Config, compose("train", [f"sweep.name='{name}'"]))


def test_a_config_error_imports_neither_tensorflow_nor_grpc(tmp_path):
    """The one-line error comes before the training stack: a typo costs a second."""
    code = ("import sys\nsys.argv = ['fmnist.train', 'trainer.epochs=0']\nfrom fmnist.train import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, [m for m in ('tensorflow', 'keras', 'grpc', 'keras_tuner') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr


def command(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m fmnist.sweep args...` as a user runs it: HYDRA_FULL_ERROR unset unless `env` sets it."""
    base = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", "fmnist.sweep", *args], capture_output=True, text=True,
                          cwd=tmp_path, env={**base, **(env or {})}, timeout=120)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: config: "), out.stderr
    return lines[0].removeprefix("error: config: ")


@pytest.mark.parametrize("value,reason", [
    ("${oc.env:FMNIST_NO_SUCH_VAR}", "Environment variable 'FMNIST_NO_SUCH_VAR' not found"),
    ("${no.such.key}", "Interpolation key 'no.such.key' not found"),
    ("${no_such_resolver:x}", "Unsupported interpolation type no_such_resolver"),
], ids=["unset-variable", "missing-key", "unknown-resolver"])
def test_an_interpolation_that_cannot_resolve_is_one_line_naming_the_key(value, reason):
    with pytest.raises(ConfigError) as e:
        validate(Config, compose("train", [f"model.conv_blocks.0.filters={value}"]))
    assert str(e.value) == f"model.conv_blocks[0].filters={value!r}: cannot resolve: {reason}"


def test_an_unset_environment_variable_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    line = one_error_line(command(tmp_path, "sweep.name=${oc.env:FMNIST_NO_SUCH_VAR}"))
    assert line == "sweep.name='${oc.env:FMNIST_NO_SUCH_VAR}': cannot resolve: Environment variable " \
                   "'FMNIST_NO_SUCH_VAR' not found"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("tagged", ["!!python/object:os.system ls", "!foo bar"], ids=["python-object", "unknown"])
def test_a_yaml_tag_in_a_config_dir_file_is_one_line_naming_the_file(tmp_path, tagged):
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "tagged.yaml").write_text(f"# @package _global_\nname: {tagged}\n")
    line = one_error_line(command(tmp_path, "--config-dir", str(tmp_path / "mine"), "experiment=tagged"))
    tag = tagged.split()[0].replace("!!", "tag:yaml.org,2002:")
    assert line == f"{tmp_path / 'mine' / 'experiment' / 'tagged.yaml'}, line 2: could not determine a constructor " \
                   f"for the tag '{tag}'"


@pytest.mark.parametrize("args,expected", [
    (["experiment=nope"], "In 'config': Could not find 'experiment/nope' (options: finetune, photos, quick, "),
    (["sweep.name=[x"], "sweep.name=[x: no viable alternative at input '[x'"),
    (["no_such_key=1"], "Could not override 'no_such_key'. To append to your config use +no_such_key=1"),
    (["--config-dir", "no_such_dir"], "Additional config directory "),
], ids=["missing-option", "malformed-override", "unknown-key", "missing-config-dir"])
def test_a_config_hydra_cannot_compose_is_one_line_and_exit_2_like_our_own(tmp_path, args, expected):
    assert one_error_line(command(tmp_path, *args)).startswith(expected)


def test_a_user_who_asks_hydra_for_tracebacks_gets_them(tmp_path):
    out = command(tmp_path, "experiment=nope", env={"HYDRA_FULL_ERROR": "1"})
    assert out.returncode == 1 and "Traceback" in out.stderr and "error: config:" not in out.stderr


def test_the_job_runs_without_hydras_switch_and_its_own_failures_stay_hydras_to_report(tmp_path):
    """The switch that makes Hydra raise is on only while composing: a process the job starts
    does not inherit it, and a bug in the job keeps Hydra's report (not a config line)."""
    (tmp_path / "probe.py").write_text("import os\n\ndef job(cfg):\n"
                                       "    print('switch:', os.environ.get('HYDRA_FULL_ERROR'), flush=True)\n"
                                       "    raise RuntimeError('a bug in the job')\n")
    code = "from fmnist.cli import entry\nentry('train', 'probe:job')()"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}, timeout=120)
    assert out.stdout.strip() == "switch: None"
    assert out.returncode == 1 and "RuntimeError: a bug in the job" in out.stderr and "error: config:" not in out.stderr
