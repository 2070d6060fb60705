"""Photo networks from scratch, side by side, as the photo sweep would train them.

    python bench/photo_family.py TRAIN_DIR VALIDATION_DIR [--recipes base res ...] [--epochs 40] [--seed 1]

Each recipe is `experiment=finetune`'s network and training (fmnist.photos.transfer) with one
change, trained on TRAIN_DIR less its stratified selection split (15%, seeded), for the same
epochs. The table gives accuracy on the selection split (what a sweep selects on), on
VALIDATION_DIR (only to check), the minutes and seconds per epoch; then the average of every
pair of recipes and of all of them (an ensemble), with no weights fitted. Probabilities are
kept in --out, so a later run's recipes can join an ensemble without training again.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Callable

import numpy as np

from fmnist.config import Config
from fmnist.config.loading import checked
from fmnist.photos.finetuning import photo_data
from fmnist.photos.photoset import prepare_all, scan
from fmnist.photos.transfer import for_inference, network, train_stages
from fmnist.serving.classifier import probabilities
from fmnist.training.fitting import seed_everything


def blocks(cfg: Config, first: int = 1, **change: object) -> Config:
    """The conv blocks from `first` on (1: all but the stem) changed alike (residual, convs, filters scaled)."""
    scale = float(change.pop("scale", 1))
    new = [b if i < first else b.model_copy(update={**change, "filters": int(b.filters * scale)})
           for i, b in enumerate(cfg.model.conv_blocks)]
    if scale != 1:
        new[0] = new[0].model_copy(update={"filters": int(new[0].filters * scale)})
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"conv_blocks": new})})


# name -> (overrides, change to the composed config)
RECIPES: dict[str, tuple[list[str], Callable[[Config], Config]]] = {
    "base": ([], lambda c: c),
    "res": ([], lambda c: blocks(c, residual=True, convs=2)),
    "res-late": ([], lambda c: blocks(c, first=2, residual=True, convs=2)),
    "wide": ([], lambda c: blocks(c, scale=1.5)),
    "size128": (["photo.size=128"], lambda c: c),
    "smooth": (["finetune.label_smoothing=0.1"], lambda c: c),
    "res-smooth": (["finetune.label_smoothing=0.1"], lambda c: blocks(c, residual=True, convs=2)),
}


def run(name: str, args: argparse.Namespace) -> dict[str, object]:
    overrides, change = RECIPES[name]
    cfg = change(checked("finetune", ["experiment=finetune", "finetune.base=none", f"photos={args.train}",
                                      f"seed={args.seed}", f"trainer.epochs={args.epochs}", *overrides]))
    seed_everything(cfg.seed)
    data = photo_data(cfg)
    a = data.arrays(cfg.photo)
    checking = scan(args.validation, data.classes)
    x_check, kept = prepare_all(checking.files, data.cache(cfg.photo), workers=2)
    net = network(cfg, len(data.classes), None)
    start = time.perf_counter()
    history = train_stages(net, cfg, (a.x_train, a.y_train), (a.x_val, a.y_val), [], cfg.seed)
    minutes = (time.perf_counter() - start) / 60
    model = for_inference(net, cfg)
    p_split, p_check = probabilities(model, a.x_val), probabilities(model, x_check)
    np.savez(args.out / f"{name}-seed{args.seed}.npz", split=p_split, check=p_check, y_split=a.y_val,
             y_check=checking.labels[kept])
    return {"recipe": name, "split": float(np.mean(p_split.argmax(1) == a.y_val)),
            "check": float(np.mean(p_check.argmax(1) == checking.labels[kept])), "minutes": minutes,
            "s/epoch": minutes * 60 / len(history["loss"]), "params": net.count_params()}


def ensembles(names: list[str], args: argparse.Namespace) -> list[dict[str, object]]:
    kept = {n: np.load(args.out / f"{n}-seed{args.seed}.npz") for n in names}
    rows = []
    for k in range(2, len(names) + 1):
        for group in itertools.combinations(names, k):
            first = kept[group[0]]
            split = np.mean([kept[n]["split"] for n in group], 0)
            check = np.mean([kept[n]["check"] for n in group], 0)
            rows.append({"recipe": " + ".join(group), "split": float(np.mean(split.argmax(1) == first["y_split"])),
                         "check": float(np.mean(check.argmax(1) == first["y_check"]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train")
    parser.add_argument("validation")
    parser.add_argument("--recipes", nargs="+", default=["base", "res"], choices=sorted(RECIPES))
    parser.add_argument("--join", nargs="*", default=[], help="recipes trained by an earlier run, kept in --out")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench_runs/photo_family"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| recipe | selection split | validation/ (check) | minutes | s/epoch | params |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.recipes:
        r = run(name, args)
        print(f"| {r['recipe']} | {r['split']:.4f} | {r['check']:.4f} | {r['minutes']:.1f} | {r['s/epoch']:.1f} | "
              f"{r['params']:,} |", flush=True)
    for r in ensembles([*args.join, *args.recipes], args):
        print(f"| {r['recipe']} | {r['split']:.4f} | {r['check']:.4f} | | | |", flush=True)


if __name__ == "__main__":
    main()
