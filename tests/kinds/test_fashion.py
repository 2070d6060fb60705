"""The Fashion-MNIST kind (fmnist/kinds/fashion.py) without training: its first trials and how
its trials train longer."""

from __future__ import annotations

from fmnist.config.loading import checked
from fmnist.kinds.fashion import FashionKind


def test_a_new_sweep_on_an_empty_registry_tries_seed_final_first(store, capsys):
    cfg = checked("train", [])
    first = FashionKind().first_trials(cfg)
    assert len(first) == 1 and "first trial 0: seed_final" in capsys.readouterr().out
    assert first[0]["model.conv_blocks"] == len(checked("train", ["experiment=seed_final"]).model.conv_blocks)


def test_a_longer_run_keeps_its_best_epoch_within_the_gap_and_a_trial_has_the_time_limit():
    cfg = checked("train", ["selection.max_gap=0.04", "sweep.trial_minutes=3"])
    kind = FashionKind()
    longer, trial = kind.longer(cfg, None), kind.hypermodel(cfg, None, cfg.sweep.trial_minutes)
    assert (longer.max_gap, longer.minutes) == (0.04, 0)
    assert (trial.max_gap, trial.minutes) == (None, 3)
