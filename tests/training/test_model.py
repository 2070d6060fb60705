"""The builder makes each seed model with the architecture the original project had."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fmnist.config import Config, validate
from fmnist.config.loading import compose
from fmnist.errors import ConfigError
from fmnist.training.model import CUSTOM_OBJECTS, base_model, build_model, mirror_averaged


def conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def dense(nin: int, nout: int) -> int:
    return nin * nout + nout


# Parameter counts worked out by hand from each architecture.
EXPECTED = {
    "seed_dense": dense(784, 128) + dense(128, 10),
    "seed_cnn32": conv(3, 1, 32) + dense(13 * 13 * 32, 128) + dense(128, 10),
    "seed_cnn64": conv(3, 1, 64) + dense(13 * 13 * 64, 128) + dense(128, 10),
    "seed_cnn_dropout": conv(3, 1, 64) + conv(3, 64, 128) + dense(5 * 5 * 128, 128) + dense(128, 10),
    "seed_final": conv(3, 1, 32) + conv(3, 32, 64) + dense(7 * 7 * 64, 128) + dense(128, 10),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_seed_model_shape_and_parameters(name):
    model = build_model(validate(Config, compose("train", [f"experiment={name}"])).model)
    assert model.output_shape == (None, 10)
    assert model.count_params() == EXPECTED[name]


def test_batch_norm_is_built_and_augmentation_stays_out_of_the_model():
    cfg = compose("train", ["model.conv_blocks.0.batch_norm=true", "model.augment.flip=true",
                                 "model.augment.shift=0.1", "model.augment.zoom=0.1"])
    model = build_model(validate(Config, cfg).model)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "BatchNormalization" in kinds
    assert not [k for k in kinds if k.startswith("Random")], "augmentation belongs to the training batches"
    assert model.output_shape == (None, 10)

def test_a_residual_block_adds_its_input_and_projects_it_where_the_shape_changes():
    """Two residual blocks: 8 -> 8 channels adds the input as it is; 8 -> 16 with stride 2
    adds a 1x1 strided projection of it. Parameters counted by hand (batch norm: 4 per channel)."""
    block = "{filters:%d,convs:2,kernel:3,stride:%d,padding:same,pool:false,batch_norm:true,residual:true,dropout:0.0}"
    cfg = validate(Config, compose("train", [f"model.conv_blocks=[{block % (8, 1)},{block % (16, 2)}]",
                                             "model.dense=[]", "model.pooling=average", "search=none"]))
    model = build_model(cfg.model, (28, 28, 8))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Add") == 2
    first = 2 * (9 * 8 * 8 + 4 * 8)
    second = 9 * 8 * 16 + 4 * 16 + 9 * 16 * 16 + 4 * 16 + (8 * 16 + 4 * 16)  # two convs and the projection
    assert model.count_params() == first + second + dense(16, 10)
    assert model.get_layer(index=-2).output.shape[1:] == (16,)


def test_a_residual_block_needs_same_padding():
    block = "{filters:8,convs:2,kernel:3,stride:1,padding:valid,pool:false,batch_norm:false,residual:true,dropout:0.0}"
    with pytest.raises(ConfigError, match="residual block needs padding 'same'"):
        validate(Config, compose("train", [f"model.conv_blocks=[{block}]"]))


def test_mirror_averaged_model_is_the_mean_over_both_views_and_survives_saving(tmp_path):
    model = build_model(validate(Config, compose("train", ["experiment=quick"])).model)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    expected = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    averaged = mirror_averaged(model)
    np.testing.assert_allclose(averaged.predict(x, verbose=0), expected, atol=1e-6)
    assert base_model(averaged) is model and base_model(model) is model
    averaged.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", custom_objects=CUSTOM_OBJECTS)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)


def test_logged_requirements_name_the_backend_in_use():
    """A model trained on JAX must not ask for TensorFlow where it is served (issue 17's first failure)."""
    from fmnist.training.modelio import requirements

    names = [r.split("==")[0] for r in requirements("pillow")]
    backend = {"tensorflow": ["tensorflow", "tensorflow-cpu"], "jax": ["jax"]}[keras.backend.backend()]
    assert names[0] == "keras" and names[1] in backend and names[2:] == ["numpy", "pillow"]
