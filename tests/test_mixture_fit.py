"""Mixture weights fitted to the logits as the ensemble serves them."""

import keras
import numpy as np
import pytest

from keras_adanas import Distillation, MixtureWeights, NASNetA
from keras_adanas.search import Distiller, build_candidates, ensemble_key
from keras_adanas.search.distiller import member_key
from keras_adanas.search.mixture_fit import mixed_crossentropy, refit_mixture_weights


def crossentropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("shape", [(3,), (3, 4)], ids=["scalar", "vector"])
def test_mixed_crossentropy_and_its_gradient_against_a_hand_computation(shape):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 20, 4))
    labels = rng.integers(0, 4, 20)
    weights = rng.normal(size=shape)
    loss, gradient = mixed_crossentropy(weights, logits, labels)
    per_class = weights if weights.ndim == 2 else weights[:, None]
    mixed = sum(per_class[k] * logits[k] for k in range(3))
    assert loss == pytest.approx(crossentropy(mixed, labels))
    numeric = np.zeros_like(weights)
    for index in np.ndindex(weights.shape):
        step = np.zeros_like(weights)
        step[index] = 1e-6
        up = mixed_crossentropy(weights + step, logits, labels)[0]
        down = mixed_crossentropy(weights - step, logits, labels)[0]
        numeric[index] = (up - down) / 2e-6
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_refit_weights_lean_on_the_member_that_is_right():
    """The second member's logits point at the labels, the first's at noise:
    from uniform weights, the fit gives the second the larger weight and a
    lower loss than uniform weights."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 200)
    right = np.eye(5)[labels] * 3.0 + rng.normal(scale=0.5, size=(200, 5))
    noise = rng.normal(scale=3.0, size=(200, 5))
    uniform = np.full(2, 0.5)
    weights = refit_mixture_weights(uniform, [noise, right], labels)
    assert weights.dtype == np.float32 and weights.shape == (2,)
    assert weights[1] > weights[0]
    stacked = np.stack([noise, right])
    assert (
        mixed_crossentropy(weights.astype("float64"), stacked, labels)[0]
        < (mixed_crossentropy(uniform, stacked, labels)[0])
    )


def iteration_two_distiller(mixture_fit):
    (member,) = build_candidates(["1@24"], 3, (12, 12, 3), 1, seed=1)
    member = member.without_auxiliary_head(name="member_1")
    previous = MixtureWeights("scalar", 1, 3, name="previous")
    candidates = build_candidates(["1@24"], 3, (12, 12, 3), 2, seed=2)
    return Distiller(
        candidates, [member], previous, "scalar", Distillation("none"), mixture_fit=mixture_fit
    )


def test_inference_outputs_hold_the_members_logits():
    distiller = iteration_two_distiller("training")
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 12, 3)).astype("float32")
    outputs = distiller(images, training=False)
    expected = distiller.members[0](images, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs[member_key(0)]),
        keras.ops.convert_to_numpy(expected),
        rtol=1e-6,
    )
    assert member_key(0) not in distiller(images, training=True)


def test_refit_mixtures_are_not_trained_in_the_step():
    refit = iteration_two_distiller("refit")
    assert not refit.learns_mixture and not refit.mixtures[0].trainable_variables
    assert len(refit.variable_groups()) == 1  # the candidate alone
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 12, 3)).astype("float32")
    assert ensemble_key(0) not in refit(images, training=True)
    inference = iteration_two_distiller("inference")
    assert inference.learns_mixture and ensemble_key(0) in inference(images, training=True)
    with pytest.raises(ValueError, match="mixture_fit='served'"):
        iteration_two_distiller("served")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
def test_inference_fit_mixes_the_candidates_inference_logits():
    """With `mixture_fit="inference"` the training step's ensemble mixes the
    candidate's inference-mode logits (drop path off, moving statistics)."""
    distiller = iteration_two_distiller("inference")
    candidate = distiller.candidates[0]
    images = np.random.default_rng(0).integers(0, 256, (8, 12, 12, 3)).astype("float32")
    outputs = distiller(images, training=True)
    served = candidate(images, training=False)["logits"]
    member = distiller.members[0](images, training=False)
    expected = distiller.mixtures[0]([member, served])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs[ensemble_key(0)]),
        keras.ops.convert_to_numpy(expected),
        rtol=1e-5,
        atol=1e-6,
    )
    assert isinstance(candidate, NASNetA)
