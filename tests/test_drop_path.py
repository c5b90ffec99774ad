import keras
import numpy as np
import pytest

from keras_adanas import DropPath, NASNetA, set_drop_path_schedule
from keras_adanas.nasnet import drop_path_layers


def keep_formula(step, total_steps, cell_index, num_cells, keep_prob=0.6):
    progress = min(1.0, step / total_steps)
    return 1 - progress * (cell_index + 1) / (num_cells + 2) * (1 - keep_prob)


@pytest.mark.parametrize("step", [0, 25, 50, 100, 150])
@pytest.mark.parametrize("cell_index", [0, 4, 7])
def test_keep_probability_follows_the_schedule(step, cell_index):
    layer = DropPath(cell_index=cell_index, num_cells=6, total_steps=100, seed=1)
    inputs = np.ones((4000, 1, 1, 1), "float32")
    layer(inputs)  # build
    set_drop_path_schedule(layer, total_steps=100, step=step)
    expected = keep_formula(step, 100, cell_index, 6)
    assert float(layer.keep_probability()) == pytest.approx(expected, rel=1e-6)

    outputs = keras.ops.convert_to_numpy(layer(inputs, training=True)).ravel()
    kept = outputs[outputs != 0]
    # Kept examples are scaled by exactly 1 / keep ...
    np.testing.assert_allclose(kept, 1.0 / expected, rtol=1e-6)
    # ... and about `keep` of them are kept (4000 draws: 5 sigma < 0.04).
    assert kept.size / outputs.size == pytest.approx(expected, abs=0.04)
    # Each training call advances the schedule by one step.
    assert float(keras.ops.convert_to_numpy(layer.step)) == step + 1


@pytest.mark.parametrize("dtype", ["mixed_float16", "mixed_bfloat16"])
def test_the_schedule_counts_in_float32_under_a_mixed_policy(dtype):
    """A half-precision read of the counter would stall it at 2048 (256 in
    bfloat16): 2048 + 1 rounds back to 2048."""
    layer = DropPath(cell_index=0, num_cells=6, total_steps=40_000, seed=0, dtype=dtype)
    inputs = np.ones((2, 1, 1, 1), "float32")
    layer(inputs)
    set_drop_path_schedule(layer, total_steps=40_000, step=2048)
    for _ in range(3):
        outputs = layer(inputs, training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype.removeprefix("mixed_")
    assert float(keras.ops.convert_to_numpy(layer.step)) == 2051
    assert float(keras.ops.convert_to_numpy(layer.total_steps)) == 40_000


def test_identity_at_inference():
    layer = DropPath(cell_index=5, num_cells=6, total_steps=10, seed=0)
    inputs = np.random.default_rng(0).normal(size=(64, 2, 2, 3)).astype("float32")
    layer(inputs)
    set_drop_path_schedule(layer, total_steps=10, step=10)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(inputs)), inputs)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(inputs, training=False)), inputs)
    assert float(keras.ops.convert_to_numpy(layer.step)) == 10  # not advanced


def test_off_until_a_schedule_is_set():
    layer = DropPath(cell_index=7, num_cells=6, seed=0)
    inputs = np.ones((256, 1, 1, 1), "float32")
    outputs = keras.ops.convert_to_numpy(layer(inputs, training=True))
    np.testing.assert_array_equal(outputs, inputs)


def test_serialization():
    layer = DropPath(cell_index=2, num_cells=6, keep_prob=0.7, total_steps=50, seed=4, name="dp")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, DropPath)
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell_index": 9, "num_cells": 6}, "cell_index"),
        ({"cell_index": 0, "num_cells": 6, "keep_prob": 0.0}, "keep_prob=0.0"),
        ({"cell_index": 0, "num_cells": 6, "keep_prob": 1.5}, "keep_prob=1.5"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DropPath(**kwargs)


def test_every_non_identity_op_of_a_network_has_a_scheduled_drop_path():
    model = NASNetA("1@24", 10)
    layers = drop_path_layers(model)
    # 1@24: 3 normal cells (5 non-identity branches with 8 drop paths: s2 2,
    # s3 2, s4 1, s5 2, s6 1) and 2 reduction cells (9: all but s5's identity).
    assert len(layers) == 3 * 8 + 2 * 9
    assert sorted({layer.cell_index for layer in layers}) == [0, 1, 2, 3, 4]
    assert all(layer.num_cells == 3 for layer in layers)
    set_drop_path_schedule(model, total_steps=40, step=20)
    for layer in layers:
        expected = keep_formula(20, 40, layer.cell_index, 3)
        assert float(layer.keep_probability()) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="total_steps=-1"):
        set_drop_path_schedule(model, total_steps=-1)


def test_saved_weights_carry_the_random_state_of_the_drop_pattern(tmp_path):
    def model():
        layer = DropPath(cell_index=3, num_cells=3, total_steps=10, seed=4)
        return keras.Sequential([keras.Input((1, 1, 1)), layer])

    inputs = np.ones((64, 1, 1, 1), "float32")
    original = model()
    first = keras.ops.convert_to_numpy(original(inputs, training=True))
    original.save_weights(tmp_path / "backup.weights.h5")
    expected = keras.ops.convert_to_numpy(original(inputs, training=True))
    assert not np.array_equal(first, expected)  # the state moved on
    restored = model()
    restored.load_weights(tmp_path / "backup.weights.h5")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(inputs, training=True)), expected
    )


def test_keep_probability_one_is_the_identity_in_training():
    """With nothing to drop, training draws no masks and counts no steps."""
    layer = DropPath(cell_index=3, num_cells=4, keep_prob=1.0, total_steps=10, seed=0)
    inputs = np.random.default_rng(0).normal(size=(8, 4, 4, 2)).astype("float32")
    outputs = layer(inputs, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), inputs)
    assert float(keras.ops.convert_to_numpy(layer.step)) == 0.0
