import keras
import numpy as np
import pytest

from keras_adanas import Ensemble, MixtureWeights, NASNetA

LOGITS = [
    np.array([[1.0, 2.0, 3.0]], "float32"),
    np.array([[0.0, -1.0, 4.0]], "float32"),
    np.array([[2.0, 2.0, -2.0]], "float32"),
]


@pytest.mark.parametrize("members", [1, 2, 3])
def test_uniform_weights_are_one_over_i(members):
    mixture = MixtureWeights("uniform", members, 3)
    np.testing.assert_allclose(mixture.member_weights(), [1.0 / members] * members)
    assert mixture.num_params == 0 and not mixture.trainable_weights
    mixed = keras.ops.convert_to_numpy(mixture(LOGITS[:members]))
    np.testing.assert_allclose(mixed, np.mean(LOGITS[:members], axis=0), rtol=1e-6)


def test_scalar_and_vector_weights_start_at_one_over_i_and_mix_logits():
    scalar = MixtureWeights("scalar", 3, 3)
    np.testing.assert_allclose(scalar.member_weights(), [1 / 3] * 3, rtol=1e-6)
    assert scalar.num_params == 3
    scalar.weight.assign([0.5, 2.0, -1.0])
    expected = 0.5 * LOGITS[0] + 2.0 * LOGITS[1] - 1.0 * LOGITS[2]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scalar(LOGITS)), expected, rtol=1e-6)

    vector = MixtureWeights("vector", 3, 3)
    assert vector.num_params == 9 and vector.member_weights().shape == (3, 3)
    weights = np.arange(9, dtype="float32").reshape(3, 3)
    vector.weight.assign(weights)
    expected = sum(weights[k] * LOGITS[k] for k in range(3))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(vector(LOGITS)), expected, rtol=1e-6)


def test_mixture_errors():
    with pytest.raises(ValueError, match="mixture_weights='matrix'"):
        MixtureWeights("matrix", 2, 3)
    with pytest.raises(ValueError, match="expects 2 member logits"):
        MixtureWeights("uniform", 2, 3)(LOGITS)
    with pytest.raises(ValueError, match="num_members=0"):
        MixtureWeights("scalar", 0, 3)


def member(name, seed, shape=(12, 12, 3), classes=4):
    return NASNetA("1@24", classes, shape, seed=seed).without_auxiliary_head(name=name)


def test_ensemble_is_frozen_weighted_logits_and_serializable(tmp_path):
    members = [member("member_1", 1), member("member_2", 2)]
    mixture = MixtureWeights("scalar", 2, 4)
    mixture.weight.assign([0.25, 1.5])
    ensemble = Ensemble(members, mixture, classes=["a", "b", "c", "d"], metadata={"k": [1]})
    assert not ensemble.trainable_weights
    images = np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    logits = keras.ops.convert_to_numpy(ensemble(images))
    expected = 0.25 * keras.ops.convert_to_numpy(members[0](images)) + 1.5 * (
        keras.ops.convert_to_numpy(members[1](images))
    )
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    # Frozen: even a training-mode call uses the batch-norm moving statistics.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ensemble(images, training=True)), logits, rtol=1e-5, atol=1e-6
    )

    path = str(tmp_path / "ensemble.keras")
    ensemble.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, Ensemble)
    assert restored.classes == ["a", "b", "c", "d"] and restored.metadata == {"k": [1]}
    assert [m.name for m in restored.members] == ["member_1", "member_2"]
    np.testing.assert_allclose(restored.mixture_weights.member_weights(), [0.25, 1.5])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(images)), logits, atol=1e-6)


def test_ensemble_errors():
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([], MixtureWeights("uniform", 1))
    with pytest.raises(ValueError, match="weighs 2 members"):
        Ensemble([member("member_1", 1)], MixtureWeights("uniform", 2))
    with pytest.raises(ValueError, match="unique"):
        Ensemble([member("m", 1), member("m", 2)], MixtureWeights("uniform", 2))
    with pytest.raises(ValueError, match="same images"):
        Ensemble([member("a", 1), member("b", 2, shape=(16, 16, 3))], MixtureWeights("uniform", 2))
