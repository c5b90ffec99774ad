import keras
import numpy as np
import pytest

from keras_adanas import Distillation, MixtureWeights, NASNetA
from keras_adanas.distillation import distillation_loss, teacher_logits
from keras_adanas.search import Distiller, auxiliary_key, candidate_key, ensemble_key

TEACHER = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], "float32")
STUDENT = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 1.5]], "float32")
LABELS = np.array([0, 1])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def hand_kd(teacher, student, temperature):
    targets = softmax(teacher / temperature)
    log_probs = np.log(softmax(student / temperature))
    return float(np.mean(-(targets * log_probs).sum(axis=1)))


def hand_smoothed_ce(logits, labels, smoothing=0.1):
    k = logits.shape[1]
    targets = np.full(logits.shape, smoothing / k)
    targets[np.arange(len(labels)), labels] += 1 - smoothing
    return float(np.mean(-(targets * np.log(softmax(logits))).sum(axis=1)))


def hand_ce(logits, labels):
    return float(np.mean(-np.log(softmax(logits)[np.arange(len(labels)), labels])))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_loss_against_hand_computation(temperature):
    value = float(distillation_loss(TEACHER, STUDENT, temperature))
    assert value == pytest.approx(hand_kd(TEACHER, STUDENT, temperature), rel=1e-5)


def test_teachers_of_each_mode():
    members = [TEACHER, STUDENT]
    ensemble = TEACHER + STUDENT
    np.testing.assert_array_equal(teacher_logits("born_again", members, ensemble), STUDENT)
    np.testing.assert_array_equal(teacher_logits("adaptive", members, ensemble), ensemble)
    with pytest.raises(ValueError, match="no teacher"):
        teacher_logits("none", members, ensemble)


def test_distillation_settings():
    assert not Distillation("none").active
    assert not Distillation("adaptive", weight=0.0).active
    assert Distillation("born_again").needs_teacher(2)
    assert not Distillation("born_again").needs_teacher(1)
    with pytest.raises(ValueError, match="distillation='akd'"):
        Distillation("akd")
    with pytest.raises(ValueError, match="kd_temperature=0"):
        Distillation("adaptive", temperature=0)
    with pytest.raises(ValueError, match="kd_weight=-1"):
        Distillation("adaptive", weight=-1)


def served_member(name, seed):
    model = NASNetA("1@24", 3, (12, 12, 3), seed=seed)
    return model.without_auxiliary_head(name=name)


@pytest.fixture(scope="module")
def iteration_3_parts():
    members = [served_member("member_1", 1), served_member("member_2", 2)]
    previous = MixtureWeights("scalar", 2, 3, name="previous")
    previous.weight.assign([0.7, 0.3])
    candidate = NASNetA("1@24", 3, (12, 12, 3), seed=3, name="candidate")
    images = np.random.default_rng(0).integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)
    return members, previous, candidate, images


@pytest.mark.parametrize("mode", ["none", "born_again", "adaptive"])
def test_candidate_loss_of_each_mode_against_hand_computation(mode, iteration_3_parts):
    members, previous, candidate, images = iteration_3_parts
    distillation = Distillation(mode, temperature=2.0, weight=0.5)
    distiller = Distiller(
        [candidate], members, previous, mixture_kind="scalar", distillation=distillation
    )
    outputs = distiller(images, training=False)
    member_logits = [keras.ops.convert_to_numpy(m(images)) for m in members]
    if mode == "none":
        assert "teacher" not in outputs
    else:
        expected_teacher = (
            member_logits[-1]
            if mode == "born_again"
            else 0.7 * member_logits[0] + 0.3 * member_logits[1]
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(outputs["teacher"]), expected_teacher, rtol=1e-5, atol=1e-5
        )

    # Fixed logits in place of the network's outputs.
    y_pred = {
        candidate_key(0): STUDENT,
        auxiliary_key(0): TEACHER[::-1].copy(),
        ensemble_key(0): TEACHER + 1.0,
    }
    if mode != "none":
        y_pred["teacher"] = TEACHER
    distiller.compute_loss(y=LABELS, y_pred=y_pred)
    l2 = float(sum(keras.ops.convert_to_numpy(loss) for loss in candidate.losses))
    expected = hand_smoothed_ce(STUDENT, LABELS) + 0.4 * hand_smoothed_ce(TEACHER[::-1], LABELS)
    expected += l2
    if mode != "none":
        expected += 0.5 * hand_kd(TEACHER, STUDENT, 2.0)
    candidate_loss = float(distiller.candidate_trackers[0].result())
    ensemble_loss = float(distiller.ensemble_trackers[0].result())
    assert candidate_loss == pytest.approx(expected, rel=1e-5)
    # The mixture weights learn from the plain (unsmoothed) ensemble CE.
    assert ensemble_loss == pytest.approx(hand_ce(TEACHER + 1.0, LABELS), rel=1e-5)
