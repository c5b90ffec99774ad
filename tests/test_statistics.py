"""recompute_batch_statistics: moving statistics from a clean pass, nothing else."""

import keras
import numpy as np
import pytest

from keras_adanas import NASNetA
from keras_adanas.nasnet import drop_path_layers, recompute_batch_statistics, set_drop_path_schedule


def _frozen_member(seed=0):
    """A served NASNetA frozen as an ensemble member, halfway through its
    drop-path schedule."""
    model = NASNetA("1@24", 10, seed=seed)
    set_drop_path_schedule(model, total_steps=10, step=7)
    member = model.without_auxiliary_head(name="member_1")
    member.trainable = False
    return member


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable)


def _norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_moving_statistics_are_the_mean_of_the_batch_statistics(cifar10):
    member = _frozen_member()
    images = cifar10["x_train"][:100]  # three batches of 32, and 4 images left out
    norms = _norms(member)
    statistics_before = [_numpy(v) for n in norms for v in (n.moving_mean, n.moving_variance)]
    weights_before = [_numpy(w) for w in member.trainable_weights + member.non_trainable_weights]
    drop_before = [
        [_numpy(v) for v in (d.step, d.total_steps, d.seed_generator.state)]
        for d in drop_path_layers(member)
    ]

    assert recompute_batch_statistics(member, images, batch_size=32) is member

    # The stem's batch normalization reads the stem convolution, which no
    # other batch normalization precedes: its statistics are, exactly, the
    # mean over the three full batches of each batch's mean and (biased)
    # variance.
    stem = keras.Model(member.input, member.get_layer("stem_conv").output)
    channels = stem.output.shape[-1]
    batches = [_numpy(stem(images[i : i + 32])).reshape(-1, channels) for i in (0, 32, 64)]
    stem_bn = member.get_layer("stem_bn")
    np.testing.assert_allclose(
        _numpy(stem_bn.moving_mean), np.mean([b.mean(axis=0) for b in batches], axis=0), atol=1e-5
    )
    np.testing.assert_allclose(
        _numpy(stem_bn.moving_variance),
        np.mean([b.var(axis=0) for b in batches], axis=0),
        rtol=1e-4,
    )
    # Every batch normalization got new statistics (a mean may stay 0: a
    # 1x1 convolution of batch-normalized inputs has a batch mean of 0) ...
    after = [_numpy(v) for n in norms for v in (n.moving_mean, n.moving_variance)]
    changed = [not np.allclose(a, b) for a, b in zip(after, statistics_before, strict=True)]
    assert all(mean or variance for mean, variance in zip(changed[::2], changed[1::2], strict=True))
    # ... and nothing else changed: weights, drop-path state, flags, momenta.
    statistic_ids = {id(v) for n in norms for v in (n.moving_mean, n.moving_variance)}
    for weight, before in zip(
        member.trainable_weights + member.non_trainable_weights, weights_before, strict=True
    ):
        if id(weight) not in statistic_ids:
            np.testing.assert_array_equal(_numpy(weight), before)
    for layer, before in zip(drop_path_layers(member), drop_before, strict=True):
        state = (layer.step, layer.total_steps, layer.seed_generator.state)
        for variable, value in zip(state, before, strict=True):
            np.testing.assert_array_equal(_numpy(variable), value)
    assert not member.trainable and not any(layer.trainable for layer in member.layers)
    assert all(norm.momentum == 0.9 for norm in norms)
    # Inference reads the new statistics, deterministically.
    np.testing.assert_array_equal(_numpy(member(images[:8])), _numpy(member(images[:8])))


def test_fewer_images_than_a_batch_make_one_batch(cifar10):
    member = _frozen_member()
    images = cifar10["x_train"][:20]
    recompute_batch_statistics(member, images, batch_size=32)
    stem = keras.Model(member.input, member.get_layer("stem_conv").output)
    outputs = _numpy(stem(images)).reshape(-1, stem.output.shape[-1])
    np.testing.assert_allclose(
        _numpy(member.get_layer("stem_bn").moving_mean), outputs.mean(axis=0), atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"batch_size": 2.0}, TypeError, "batch_size=2.0"),
        ({"images": np.zeros((32, 32, 3), "uint8")}, ValueError, r"shape \(32, 32, 3\)"),
        ({"images": np.zeros((0, 32, 32, 3), "uint8")}, ValueError, "non-empty"),
    ],
)
def test_bad_arguments_change_nothing(kwargs, error, message):
    member = _frozen_member()
    before = [_numpy(w) for w in member.weights]
    arguments = {"images": np.zeros((8, 32, 32, 3), "uint8"), "batch_size": 4, **kwargs}
    with pytest.raises(error, match=message):
        recompute_batch_statistics(member, **arguments)
    for weight, value in zip(member.weights, before, strict=True):
        np.testing.assert_array_equal(_numpy(weight), value)
