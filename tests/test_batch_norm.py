"""FusedBatchNormalization is keras.layers.BatchNormalization, computed faster."""

import keras
import numpy as np
import pytest

from keras_adanas.nasnet import FusedBatchNormalization, NASNetA


def _pair(shape, dtype=None):
    settings = dict(momentum=0.9, epsilon=1e-5, dtype=dtype)
    layers = keras.layers.BatchNormalization(**settings), FusedBatchNormalization(**settings)
    channels = shape[-1]
    for layer in layers:
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, channels))
        layer.beta.assign(np.linspace(-1.0, 1.0, channels))
        layer.moving_mean.assign(np.linspace(-0.2, 0.3, channels))
        layer.moving_variance.assign(np.linspace(0.5, 1.5, channels))
    return layers


def _images(shape, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * 3.0 + 1.0).astype("float32")


@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_moving_statistics_match_keras(training):
    shape = (8, 5, 5, 6)
    keras_bn, fused = _pair(shape)
    x = _images(shape)
    for _ in range(3):  # the moving statistics follow Keras' over several steps
        expected = keras.ops.convert_to_numpy(keras_bn(x, training=training))
        actual = keras.ops.convert_to_numpy(fused(x, training=training))
    np.testing.assert_allclose(actual, expected, atol=2e-6)
    for ours, theirs in zip(fused.weights, keras_bn.weights, strict=True):
        assert ours.name == theirs.name
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    if training:  # the biased batch variance: a moving variance test against numpy
        variance = x.reshape(-1, 6).var(axis=0)
        start = np.linspace(0.5, 1.5, 6)
        for _ in range(3):
            start = 0.9 * start + 0.1 * variance
        np.testing.assert_allclose(fused.moving_variance.numpy(), start, rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_half_precision_inputs_match_keras(policy):
    """Under a mixed policy both layers take and give float16/bfloat16 and
    keep float32 statistics, computed from the same half-precision inputs."""
    shape = (8, 5, 5, 6)
    keras_bn, fused = _pair(shape, dtype=policy)
    half = keras.dtype_policies.get(policy).compute_dtype
    x = keras.ops.cast(_images(shape), half)
    if keras.config.backend() == "tensorflow":  # bfloat16 is not fused (slower)
        assert fused._fuses(x, None) == (half == "float16")
    for _ in range(3):
        expected = keras_bn(x, training=True)
        actual = fused(x, training=True)
    assert keras.backend.standardize_dtype(actual.dtype) == half
    # One unit in the last place of the outputs (|y| < 6): 2**-8 for float16,
    # 2**-5 for bfloat16.
    ulp = 2.0**-8 if half == "float16" else 2.0**-5
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(actual, "float32")),
        keras.ops.convert_to_numpy(keras.ops.cast(expected, "float32")),
        atol=ulp,
    )
    for ours, theirs in zip(fused.weights, keras_bn.weights, strict=True):
        assert keras.backend.standardize_dtype(ours.dtype) == "float32"
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="gradients through tf")
def test_gradients_match_keras():
    import tensorflow as tf

    shape = (4, 6, 6, 3)
    keras_bn, fused = _pair(shape)
    x = tf.constant(_images(shape, seed=1))
    # Random upstream gradients: a sum of squares would be nearly constant in
    # x after normalization, and its gradient rounding noise.
    upstream = tf.constant(_images(shape, seed=2))
    gradients = []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        gradients.append(tape.gradient(loss, [x, layer.gamma.value, layer.beta.value]))
    for expected, actual in zip(*gradients, strict=True):
        # Entries that are zero in exact arithmetic come out as rounding noise
        # of the largest ones, so the tolerance is relative to those.
        scale = float(np.abs(expected.numpy()).max())
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-6 * scale)


def test_rank_2_inputs_fall_back_to_keras():
    keras_bn, fused = _pair((4, 3))
    x = _images((4, 3))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=True)),
        keras.ops.convert_to_numpy(keras_bn(x, training=True)),
        atol=1e-6,
    )


def test_nasnet_uses_it_and_round_trips(tmp_path):
    model = NASNetA("1@24", 10, include_auxiliary_head=False, seed=0)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, FusedBatchNormalization) for layer in norms)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer(norms[0].name)) is FusedBatchNormalization
    config = norms[0].get_config()
    assert FusedBatchNormalization.from_config(config).get_config() == config
