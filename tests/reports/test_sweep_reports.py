"""A sweep's pictures from trial dicts as the leaderboard hands them over (MLflow params as
strings, a conditional hyperparameter absent or NaN), drawn for real on the Agg canvas: no
MLflow run, no training, so each test takes a second or two."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fmnist.reports.importance import MIN_TRIALS, distribution, importances
from fmnist.reports.sweep import best_so_far, pruned_label, sweep_importance, write_sweep_reports

PICTURES = ["sweep_progress.png", "sweep_hyperparameters.png", "sweep_importance.png", "sweep_parallel.png",
            "sweep_gap.png"]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    image = matplotlib.image.imread(path)
    assert min(image.shape[:2]) >= 200, f"{path.name}: {image.shape}"
    assert image.std() > 0.01, f"{path.name} is blank"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def quick_sweep(pruner: bool = True) -> list[dict]:
    """Fourteen trials in start order as a quick successive-halving sweep leaves them: rung 0
    at 1 epoch, rung 1 at 3, the survivors completed at 9; two skipped (too slow), one failed.
    The score is mostly the learning rate's doing, a little batch norm's. filters_3 is set
    only with 3 conv layers (absent from some rows, NaN in others, as a leaderboard row has it);
    epochs never varies. Without `pruner` every trained trial completes, with no rung or first_val."""
    rng = np.random.default_rng(3)
    plan = ["PRUNED"] * 6 + ["SKIPPED"] + ["PRUNED"] * 2 + ["FAILED"] + ["COMPLETED"] * 3 + ["SKIPPED"]
    rungs = {"PRUNED": [0, 0, 0, 0, 0, 0, 1, 1], "COMPLETED": [2, 2, 2]}
    trials = []
    for i, status in enumerate(plan):
        lr = 10 ** rng.uniform(-4, -1.5)
        conv = int(rng.choice([2, 3]))
        batch_norm = bool(rng.integers(2))
        first = 0.78 + 0.04 * (math.log10(lr) + 4) + 0.01 * batch_norm + rng.normal(0, 0.003)
        if not pruner:
            status = "COMPLETED" if status == "PRUNED" else status
        k = rungs[status].pop(0) if pruner and status in rungs else math.nan
        trained = status in ("PRUNED", "COMPLETED")
        val = first + 0.02 * k if trained and pruner else first if trained else math.nan
        whole = status == "COMPLETED"
        trials.append({
            "trial_id": f"{i:02d}", "status": status,
            "val_accuracy": val, "train_accuracy": val + 0.02 if whole else math.nan,
            "test_accuracy": val - 0.01 if whole else math.nan, "overfit_gap": 0.02 if whole else math.nan,
            "seconds": 5.0 + i, "rung": k, "epochs": (1.0, 3.0, 9.0)[k] if pruner and trained else math.nan,
            "first_val": first if pruner and trained else math.nan,
            "hp.learning_rate": str(lr), "hp.batch_size": str(rng.choice([32, 64, 128])),
            "hp.dropout": str(round(float(rng.uniform(0.1, 0.5)), 2)), "hp.optimizer": ["adam", "sgd", "rmsprop"][i % 3],
            "hp.batch_norm": str(batch_norm), "hp.conv_layers": str(conv), "hp.epochs": "9",
            **({"hp.filters_3": str(rng.choice([32, 64]))} if conv == 3 else {} if i % 2 else {"hp.filters_3": math.nan}),
        })
    return trials


def test_a_pruned_sweep_draws_importance_and_parallel_coordinates(tmp_path):
    trials = quick_sweep()
    paths = write_sweep_reports(trials, tmp_path)
    assert {p.name for p in paths} == {*PICTURES, "trials.csv", "importance.csv"}
    for name in PICTURES:
        assert_png(tmp_path / name)
    rows = read_csv(tmp_path / "importance.csv")
    # Ranked on first_val: every trained trial (8 pruned + 3 completed) has it, at one fidelity.
    assert {r["trials"] for r in rows} == {"11"}
    assert {r["target"] for r in rows} == {"validation accuracy at rung 0"}
    # filters_3 is conditional, epochs fixed: left out; the learning rate explains the most.
    assert [r["hyperparameter"] for r in rows][0] == "learning_rate"
    assert {r["hyperparameter"] for r in rows} == {"learning_rate", "batch_size", "dropout", "optimizer", "batch_norm",
                                                   "conv_layers"}
    assert sum(float(r["importance"]) for r in rows) == pytest.approx(1, abs=1e-4)
    result, _ = sweep_importance(trials)
    assert result.conditional == ["filters_3"] and result.fixed == ["epochs"]
    # Seeded: computed again, the same shares as the picture's.
    assert [float(r["importance"]) for r in rows] == pytest.approx(list(result.shares.values()), rel=1e-5)


def test_pruned_trials_do_not_set_the_best_so_far_and_are_labelled_by_rung():
    trials = quick_sweep()
    completed = [t["val_accuracy"] if t["status"] == "COMPLETED" else math.nan for t in trials]
    expected = np.fmax.accumulate(np.array(completed))
    np.testing.assert_array_equal(best_so_far(trials), expected)
    assert pruned_label(trials, 0) == "pruned at rung 0 (1 epoch)"
    assert pruned_label(trials, 1) == "pruned at rung 1 (3 epochs)"


def test_without_a_pruner_importance_ranks_the_completed_trials_by_validation_accuracy(tmp_path):
    trials = quick_sweep(pruner=False)
    write_sweep_reports(trials, tmp_path)
    for name in PICTURES:
        assert_png(tmp_path / name)
    rows = read_csv(tmp_path / "importance.csv")
    assert {r["trials"] for r in rows} == {"11"}  # 14 less two skipped, one failed
    assert {r["target"] for r in rows} == {"validation accuracy"}
    assert rows[0]["hyperparameter"] == "learning_rate"


@pytest.mark.parametrize("keep", [["00", "06", "13"], ["09", "11"]])
def test_too_few_trials_draw_a_picture_that_says_so(tmp_path, keep):
    """One trained trial (with a skipped and a failed one), or two: no importance, no error."""
    trials = [t for t in quick_sweep() if t["trial_id"] in keep]
    write_sweep_reports(trials, tmp_path)
    for name in PICTURES:
        assert_png(tmp_path / name)
    assert read_csv(tmp_path / "importance.csv") == []
    assert f"needs at least {MIN_TRIALS}" in sweep_importance(trials)[0].reason


def test_one_varied_hyperparameter_is_not_ranked(tmp_path):
    trials = [{**t, "hp.learning_rate": "0.001", "hp.batch_size": "64", "hp.dropout": "0.2", "hp.optimizer": "adam",
               "hp.conv_layers": "2"} for t in quick_sweep()]
    trials = [{k: v for k, v in t.items() if k != "hp.filters_3"} for t in trials]
    write_sweep_reports(trials, tmp_path)
    assert_png(tmp_path / "sweep_importance.png")
    assert_png(tmp_path / "sweep_parallel.png")
    assert "1 hyperparameter varied" in sweep_importance(trials)[0].reason


def test_distributions_are_inferred_from_the_values():
    assert distribution([32, 64, 128]) == (IntDistribution(32, 128), [32, 64, 128])
    assert distribution([0.5, 1, 0.25]) == (FloatDistribution(0.25, 1.0), [0.5, 1.0, 0.25])
    assert distribution([True, False]) == (CategoricalDistribution([False, True]), [True, False])
    assert distribution(["sgd", "adam", 3]) == (CategoricalDistribution(["3", "adam", "sgd"]), ["sgd", "adam", "3"])
    same = importances({"a": [1, 2, 3], "b": ["x", "y", "x"]}, [0.5, 0.5, 0.5])
    assert same.shares == {} and "scored the same" in same.reason
