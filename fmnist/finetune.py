"""`python -m fmnist.finetune photos=DIR [model=best|none|REF] [validation=DIR2] [key=value ...]`:
train a classifier of the user's own classes on their labelled photos, as one MLflow run,
and register it as a new version of `finetune.registered_model` (fmnist-photos).

`model=` names the Fashion-MNIST model to start from (`finetune.base`; `none`: from
scratch); the photo sweep (`python -m fmnist.sweep experiment=finetune photos=DIR`)
searches the same settings and registers its best trial the same way.
"""

from __future__ import annotations

import sys

import mlflow

from fmnist import cli
from fmnist.config import Config, validate
from fmnist.photorun import base_tags, fit_and_log, load_base, photo_data, register_photo_model
from fmnist.tracking import flatten, run_tags, use_store
from fmnist.transfer import network


def finetune(cfg: Config) -> str:
    """One fine-tuning run, registered; returns the MLflow run id."""
    from fmnist.train import seed_everything

    seed_everything(cfg.seed)
    data = photo_data(cfg)  # before the model: a bad folder costs no model loading
    use_store(cfg.mlflow)
    base = load_base(cfg)
    with mlflow.start_run(run_name=cfg.mlflow.run_name or f"finetune-{cfg.name}",
                          tags=run_tags(experiment=cfg.name, role="finetune", **base_tags(cfg))) as run:
        mlflow.log_params(flatten(cfg.model_dump(include={"photos", "validation", "photo", "finetune", "trainer",
                                                          "model", "seed"})))
        summary, uri = fit_and_log(cfg, data, network(cfg, len(data.classes), base), [])
        version, moved, held = register_photo_model(run.info.run_id, uri, cfg, data, summary["val_accuracy"])
    holder = "" if held is None else f" (holder: {held:.4f} on the same photos)"
    print(f"run {run.info.run_id}: train {summary['train_accuracy']:.4f}  val {summary['val_accuracy']:.4f}  "
          f"gap {summary['overfit_gap']:+.4f}; registered models:/{cfg.finetune.registered_model}/{version}"
          f"{', alias @' + cfg.selection.alias + ' moved to it' if moved else ', alias stays'}{holder}")
    return run.info.run_id


def compose_config(overrides: list[str]) -> Config:
    """conf/config.yaml with command-line style overrides (`model=` as the command reads it),
    checked: what `python -m fmnist.finetune` would run with (for the benches)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        return validate(Config, compose("config", overrides=hydra_args(overrides)))


def hydra_args(argv: list[str]) -> list[str]:
    """`model=REF` -> `finetune.base=REF`: Hydra would read `model=` as an architecture from conf/model/."""
    return [f"finetune.base={a[len('model='):]}" if a.startswith("model=") else a for a in argv]


_main = cli.entry("config", Config, lambda cfg: finetune(cfg) and 0)


def main() -> None:
    sys.argv[1:] = hydra_args(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
