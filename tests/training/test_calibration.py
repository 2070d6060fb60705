"""Temperature scaling on probabilities whose calibration is known: labels drawn from
calibrated probabilities, then those probabilities sharpened by a known temperature."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist.training.calibration import (
    Temperature,
    calibrated,
    expected_calibration_error,
    fit_temperature,
    reliability,
    scaled,
)
from fmnist.training.model import CUSTOM_OBJECTS, base_model, mirror_averaged

TRUE_T = 2.5


def calibrated_draws(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probability rows and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (n, classes))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = (rng.random((n, 1)) > p.cumsum(1)).sum(1)  # inverse-CDF draw of one class per row
    return p, np.minimum(labels, classes - 1)


def test_fit_temperature_recovers_a_known_temperature_and_scaling_lowers_ece():
    p, y = calibrated_draws(20000, 10, seed=0)
    overconfident = scaled(p, 1 / TRUE_T)  # logs multiplied by 2.5: what a network overfit on few photos says
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(TRUE_T, rel=0.05)
    assert fit_temperature(p, y) == pytest.approx(1.0, rel=0.05)  # calibrated rows are left alone
    before, after = expected_calibration_error(overconfident, y), expected_calibration_error(scaled(overconfident, t), y)
    assert before > 0.1 and after < 0.02
    assert fit_temperature(overconfident, y) == t  # deterministic: no seed, no optimiser state


def test_scaling_keeps_the_argmax_and_t1_changes_nothing():
    p, _ = calibrated_draws(500, 4, seed=1)
    np.testing.assert_allclose(scaled(p, 1.0), p, atol=1e-12)
    for t in (0.2, 3.0):
        out = scaled(p, t)
        assert (out.argmax(1) == p.argmax(1)).all()
        np.testing.assert_allclose(out.sum(1), 1.0)


def test_reliability_bins_and_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    conf, acc, counts = reliability(probs, labels, bins=10)
    assert counts.tolist() == [0, 0, 0, 0, 0, 1, 0, 1, 1, 1]
    assert conf[9] == pytest.approx(0.95) and acc[9] == 1.0 and acc[8] == 0.0 and np.isnan(conf[0])
    # |1 - 0.95| + |0 - 0.85| + |1 - 0.75| + |1 - 0.55|, over 4 rows
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx((0.05 + 0.85 + 0.25 + 0.45) / 4)


def test_a_fit_on_photos_all_right_stops_at_the_sharp_bound():
    probs = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert fit_temperature(probs, np.array([0, 1])) == pytest.approx(0.05, rel=1e-3)


@pytest.mark.parametrize("probs, labels, message", [
    (np.zeros((0, 3)), np.zeros(0), r"\(N, classes\) probabilities and N labels"),
    (np.full((2, 3), 1 / 3), np.array([0]), r"\(N, classes\) probabilities and N labels"),
    (np.full((2, 3), 1 / 3), np.array([0, 3]), r"labels must lie in \[0, 3\)"),
])
def test_bad_inputs_are_one_line(probs, labels, message):
    with pytest.raises(ValueError, match=message) as e:
        fit_temperature(probs, labels)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Temperature(0.0)


def test_the_layer_is_scaled_and_the_calibrated_model_wraps_any_model(tmp_path):
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")],
                           name="net")
    averaged = mirror_averaged(net)
    model = calibrated(averaged, 0.7)
    x = np.random.default_rng(2).random((5, 8, 8, 1), dtype=np.float32)
    expected = scaled(averaged.predict(x, verbose=0), 0.7)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
    assert model.inputs[0].name == "image" and model.layers[-1].name == "probabilities"
    assert not model.compiled  # for inference
    assert base_model(model) is net  # fine-tuning from a calibrated photo model starts from the network itself
    assert CUSTOM_OBJECTS["Temperature"] is Temperature and Temperature(1.5).get_config()["temperature"] == 1.5
