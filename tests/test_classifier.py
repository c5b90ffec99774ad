import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from keras_adanas import AdaNASClassifier, Architecture, parse_budget
from keras_adanas.recipe import SHORT_RUN_RECIPE
from keras_adanas.search import build_candidates

ONE_AT_24 = Architecture.parse("1@24").count_params(10)


@pytest.fixture(scope="module")
def cifar_strings(cifar10):
    names = np.array(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    )
    return {
        "x_train": cifar10["x_train"][:128],
        "y_train": names[cifar10["y_train"][:128]],
        "x_test": cifar10["x_test"][:64],
        "y_test": names[cifar10["y_test"][:64]],
    }


def search_arguments(directory):
    # Room for two 1@24 members and their two scalar weights, not three.
    return dict(
        budget=2 * ONE_AT_24 + 2 + ONE_AT_24 // 2,
        architecture="1@24",
        distillation="adaptive",
        mixture_weights="scalar",
        max_iterations=5,
        steps_per_iteration=3,
        seed=0,
        verbose=1,
        directory=str(directory),
    )


@pytest.fixture(scope="module")
def fitted(cifar_strings, tmp_path_factory):
    directory = tmp_path_factory.mktemp("project")
    clf = AdaNASClassifier(**search_arguments(directory))
    clf.fit(cifar_strings["x_train"], cifar_strings["y_train"])
    return clf


def test_budget_cuts_the_search_at_the_right_iteration(fitted):
    assert len(fitted.members_) == 2
    assert "iteration 3" in fitted.stop_reason_ and "budget" in fitted.stop_reason_
    assert [h["iteration"] for h in fitted.history_] == [1, 2]
    served = sum(m["params"] for m in fitted.members_) + fitted.ensemble_.mixture_weights.num_params
    assert served == 2 * ONE_AT_24 + 2 <= parse_budget(fitted.budget)


def test_learned_attributes(fitted):
    assert list(fitted.classes_[:3]) == ["airplane", "automobile", "bird"]
    assert [m["architecture"] for m in fitted.members_] == ["1@24", "1@24"]
    assert [m["params"] for m in fitted.members_] == [ONE_AT_24] * 2
    # 3 steps a member: the short-run recipe's weight decay, d * sum(w**2) / 2.
    assert SHORT_RUN_RECIPE.weight_decay == 1e-3
    for member in fitted.ensemble_.members:
        assert member.get_layer("stem_conv").kernel_regularizer.l2 == pytest.approx(5e-4)
    weights = fitted.ensemble_.mixture_weights.member_weights()
    assert [m["weight"] for m in fitted.members_] == pytest.approx(weights.tolist())
    report = fitted.history_[1]
    assert report["chosen"] == 0 and report["steps"] == 3
    assert report["candidates"][0]["architecture"] == "1@24"
    assert np.isfinite(report["candidates"][0]["train_loss"])


def test_predict_score_evaluate(fitted, cifar_strings):
    x, y = cifar_strings["x_test"], cifar_strings["y_test"]
    probabilities = fitted.predict_proba(x)
    assert probabilities.shape == (64, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    predictions = fitted.predict(x)
    assert set(predictions) <= set(fitted.classes_)
    np.testing.assert_array_equal(predictions, fitted.classes_[probabilities.argmax(axis=1)])
    assert fitted.score(x, y) == pytest.approx(np.mean(predictions == y))
    if keras.backend.backend() == "tensorflow":  # elsewhere TensorFlow may be absent
        import tensorflow as tf

        images_alone = tf.data.Dataset.from_tensor_slices(x).batch(16)
        np.testing.assert_array_equal(fitted.predict(images_alone), predictions)
    # Weighted: only the images with weight count, in proportion to it.
    weights = np.arange(64) % 3
    expected = np.sum(weights * (predictions == y)) / np.sum(weights)
    assert fitted.score(x, y, sample_weight=weights) == pytest.approx(expected)
    metrics = fitted.evaluate(x, y)
    expected_loss = -np.mean(
        np.log(probabilities[np.arange(64), np.searchsorted(fitted.classes_, y)])
    )
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(np.mean(predictions == y))
    with pytest.raises(ValueError, match="outside the class range"):
        fitted.score(x[:2], ["cat", "unicorn"])
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\)"):
        fitted.predict(np.zeros((2, 28, 28, 3), "uint8"))


def test_keras_round_trip_predicts_identically(fitted, cifar_strings, tmp_path):
    path = tmp_path / "classifier.keras"
    fitted.save(path)
    restored = AdaNASClassifier.load(path)
    # What the search computes is restored; how it ran (its directory,
    # verbosity, ...) is not: a loaded classifier never writes where its
    # original did unless told so again.
    runtime = ("directory", "overwrite", "warm_start", "verbose", "strategy", "tensorboard")
    runtime += ("jit_compile",)
    defaults = AdaNASClassifier().get_params()
    expected = {k: defaults[k] if k in runtime else v for k, v in fitted.get_params().items()}
    assert restored.get_params() == expected
    assert fitted.directory is not None and restored.directory is None
    assert restored.members_ == fitted.members_ and restored.history_ == fitted.history_
    x = cifar_strings["x_test"]
    difference = np.abs(restored.predict_proba(x) - fitted.predict_proba(x)).max()
    assert difference < 1e-5
    np.testing.assert_array_equal(restored.predict(x), fitted.predict(x))
    with pytest.raises(ValueError, match="end in '.keras'"):
        fitted.save(tmp_path / "classifier.h5")
    (tmp_path / "corrupt.keras").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable .keras file"):
        AdaNASClassifier.load(tmp_path / "corrupt.keras")
    fitted.ensemble_.members[0].save(tmp_path / "member.keras")
    with pytest.raises(ValueError, match="not a keras_adanas classifier"):
        AdaNASClassifier.load(tmp_path / "member.keras")


def test_recomputed_batch_statistics_change_only_the_statistics(fitted, cifar_strings, tmp_path):
    fitted.save(tmp_path / "classifier.keras")
    clf = AdaNASClassifier.load(tmp_path / "classifier.keras")  # the fixture stays as it is
    # The default recipe recomputed the statistics on the training images
    # after each member trained: recompute them here on the test images.
    x_train, x_test = cifar_strings["x_test"], cifar_strings["x_train"]
    before = clf.predict_proba(x_test)
    members = clf.ensemble_.members
    kernels = [m.get_layer("stem_conv").kernel.numpy().copy() for m in members]
    # Labels are accepted, and not needed.
    assert clf.recompute_batch_statistics(x_train, cifar_strings["y_test"]) is clf
    for member, kernel in zip(members, kernels, strict=True):
        stem = keras.Model(member.input, member.get_layer("stem_conv").output)
        outputs = stem.predict(x_train, verbose=0)  # one batch of 128 (batch_size=256)
        np.testing.assert_allclose(
            member.get_layer("stem_bn").moving_mean.numpy(),
            outputs.reshape(-1, outputs.shape[-1]).mean(axis=0),
            atol=1e-4,
        )
        np.testing.assert_array_equal(member.get_layer("stem_conv").kernel.numpy(), kernel)
        assert not member.trainable
    after = clf.predict_proba(x_test)
    assert np.abs(after - before).max() > 1e-3
    # Saved and loaded, it predicts with the new statistics.
    clf.save(tmp_path / "recomputed.keras")
    restored = AdaNASClassifier.load(tmp_path / "recomputed.keras")
    np.testing.assert_allclose(restored.predict_proba(x_test), after, atol=1e-6)
    with pytest.raises(ValueError, match="Images must have shape"):
        clf.recompute_batch_statistics(np.zeros((4, 16, 16, 3), "uint8"))
    with pytest.raises(NotFittedError):
        AdaNASClassifier().recompute_batch_statistics(x_train)


@pytest.mark.slow
def test_saved_models_serve_without_keras_adanas(fitted, cifar_strings, tmp_path):
    """`export` writes a SavedModel that serves in a process without
    keras_adanas. `_export_under_tensorflow`, the export of PyTorch-trained
    ensembles (a TensorFlow-backend process writes the SavedModel), raises
    the child's error here and writes nothing when it fails; its SavedModel
    is checked against `predict_proba` by the CLI test on PyTorch."""
    from keras_adanas.serving import _export_under_tensorflow

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(RuntimeError, match="under the TensorFlow backend failed"):
        _export_under_tensorflow(fitted.ensemble_, str(blocker / "saved_model"))
    assert sorted(os.listdir(tmp_path)) == ["a_file"]

    path = str(tmp_path / "saved_model")
    fitted.export(path)
    x = cifar_strings["x_test"]
    np.save(tmp_path / "images.npy", x)
    script = f"""
import sys, numpy as np, tensorflow as tf
images = np.load({str(tmp_path / "images.npy")!r})
model = tf.saved_model.load({path!r})
assert sorted(model.signatures) == ["serve", "serve_float", "serving_default"]
_, default_inputs = model.signatures["serving_default"].structured_input_signature
assert default_inputs["images"].dtype == tf.uint8, default_inputs
assert len(model.variables) == {len(fitted.ensemble_.variables)}, len(model.variables)
np.save("served.npy", model.serve(tf.constant(images)).numpy())
np.save("served_float.npy", model.serve_float(tf.constant(images.astype("float32"))).numpy())
assert "keras_adanas" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=str(tmp_path))
    expected = fitted.predict_proba(x)
    for endpoint in ("served", "served_float"):
        served = np.load(tmp_path / f"{endpoint}.npy")
        assert np.abs(served - expected).max() < 1e-5, endpoint


def test_project_directory_holds_each_finished_iteration(fitted):
    directory = fitted.directory
    assert sorted(os.listdir(directory)) == [
        "ensemble.keras",
        "iteration_001",
        "iteration_002",
        "search.json",
    ]
    for i in (1, 2):
        folder = os.path.join(directory, f"iteration_00{i}")
        assert sorted(os.listdir(folder)) == ["member.keras", "report.json"]
        with open(os.path.join(folder, "report.json")) as file:
            report = json.load(file)
        assert report["iteration"] == i and report["architecture"] == "1@24"
    assert len(AdaNASClassifier.load(directory).members_) == 2


def test_fitting_again_with_the_directory_resumes(fitted, cifar_strings, capsys):
    clf = AdaNASClassifier(**search_arguments(fitted.directory))
    clf.fit(cifar_strings["x_train"], cifar_strings["y_train"])  # nothing left to train
    out = capsys.readouterr().out
    assert "Resuming the search" in out and "Stopping: no candidate fits" in out
    assert clf.members_ == fitted.members_
    x = cifar_strings["x_test"]
    assert np.abs(clf.predict_proba(x) - fitted.predict_proba(x)).max() < 1e-6
    other = AdaNASClassifier(**{**search_arguments(fitted.directory), "distillation": "none"})
    with pytest.raises(ValueError, match="other arguments: distillation='adaptive' there"):
        other.fit(cifar_strings["x_train"], cifar_strings["y_train"])


def test_a_loaded_classifier_goes_on_growing(fitted, cifar_strings, tmp_path):
    path = tmp_path / "classifier.keras"
    fitted.save(path)
    clf = AdaNASClassifier.load(path)
    clf.set_params(warm_start=True, budget=None, max_iterations=3, directory=None, verbose=0)
    before = [w.copy() for w in (v.numpy() for v in clf.ensemble_.members[0].weights)]
    clf.fit(cifar_strings["x_train"], cifar_strings["y_train"])
    assert len(clf.members_) == 3 and len(clf.history_) == 3
    after = [v.numpy() for v in clf.ensemble_.members[0].weights]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)  # earlier members stay frozen
    assert clf.predict_proba(cifar_strings["x_test"]).shape == (64, 10)


def test_clone_and_get_params():
    clf = AdaNASClassifier(budget="3.3M", architecture="2@48", distillation="born_again")
    params = clf.get_params()
    assert params["budget"] == "3.3M" and params["architecture"] == "2@48"
    copy = clone(clf)
    assert copy.get_params() == params and copy is not clf
    assert not hasattr(copy, "ensemble_")
    with pytest.raises(NotFittedError):
        copy.predict(np.zeros((1, 32, 32, 3), "uint8"))


@pytest.mark.slow
def test_cross_val_score_fits_a_clone_per_fold(cifar10):
    """scikit-learn's model selection clones, fits and scores per fold."""
    from sklearn.model_selection import cross_val_score

    x, y = cifar10["x_train"][:64], cifar10["y_train"][:64]
    clf = AdaNASClassifier(
        architecture="1@24", max_iterations=1, steps_per_iteration=2, batch_size=16, seed=0
    )
    clf.set_params(verbose=0)
    scores = cross_val_score(clf, x, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    # Each fold's score is the accuracy on its held-out half, which one
    # member's 32 answers take in steps of 1/32.
    np.testing.assert_allclose(scores * 32, np.round(scores * 32))
    assert not hasattr(clf, "ensemble_")  # the folds fit clones


@pytest.mark.parametrize(
    "value, expected",
    [
        (3_346_538, 3_346_538),
        ("33M", 33_000_000),
        ("3.3M", 3_300_000),
        ("500k", 500_000),
        ("1,000", 1000),
        (None, None),
    ],
)
def test_parse_budget(value, expected):
    assert parse_budget(value) == expected


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"budget": "lots"}, ValueError, "budget='lots'"),
        ({"budget": -5}, ValueError, "budget=-5"),
        ({"budget": 2.5}, TypeError, "budget=2.5"),
        ({"budget": 1000}, ValueError, "below the smallest first candidate"),
        ({"generator": "random"}, ValueError, "generator='random'"),
        ({"architecture": "6@25"}, ValueError, "filters=25"),
        ({"distillation": "akd"}, ValueError, "distillation='akd'"),
        ({"mixture_weights": "matrix"}, ValueError, "mixture_weights='matrix'"),
        ({"max_iterations": 0}, ValueError, "max_iterations=0"),
        ({"epochs_per_iteration": 1, "steps_per_iteration": 5}, ValueError, "one of"),
        ({"batch_size": "32"}, TypeError, "batch_size='32'"),
        ({"learning_rate": -0.1}, ValueError, "learning_rate=-0.1"),
        ({"kd_temperature": 0}, ValueError, "kd_temperature=0"),
        ({"verbose": 3}, ValueError, "verbose=3"),
        ({"seed": -1}, ValueError, "seed=-1"),
        ({"dtype_policy": "float16"}, ValueError, "dtype_policy='float16'"),
        ({"dtype_policy": 16}, TypeError, "dtype_policy=16"),
    ],
)
def test_bad_arguments_fail_before_any_work(kwargs, error, message, tmp_path):
    directory = tmp_path / "project"
    clf = AdaNASClassifier(**{"architecture": "1@24", "directory": str(directory), **kwargs})
    x = np.zeros((4, 32, 32, 3), "uint8")
    with pytest.raises(error, match=message):
        clf.fit(x, [0, 1, 0, 1])
    assert not directory.exists()


class _OptimizerProbe(keras.callbacks.Callback):
    """Records the training model's optimizer and its loss scale at the end."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_end(self, logs=None):
        optimizer = self.model.optimizer
        scale = getattr(optimizer, "dynamic_scale", None)
        self.seen.append((type(optimizer).__name__, None if scale is None else float(scale)))


@pytest.mark.slow
def test_mixed_float16_search_scales_the_loss_and_serves_float32(cifar_strings, tmp_path):
    probe = _OptimizerProbe()
    clf = AdaNASClassifier(
        architecture="1@24",
        distillation="adaptive",
        mixture_weights="scalar",
        max_iterations=2,
        steps_per_iteration=8,
        dtype_policy="mixed_float16",
        seed=0,
        verbose=0,
    )
    clf.fit(cifar_strings["x_train"], cifar_strings["y_train"], callbacks=[probe])
    # Each iteration trains under Keras' loss scaling: from its initial scale
    # of 2**15, halved after every step whose float16 gradients overflow
    # (those steps are skipped), and the candidates then train.
    assert [name for name, _ in probe.seen] == ["LossScaleOptimizer"] * 2
    assert all(1.0 <= scale <= 2.0**15 for _, scale in probe.seen)
    untrained = build_candidates([Architecture(1, 24)], 10, (32, 32, 3), 1, 0, "mixed_float16")
    first = clf.ensemble_.members[0]
    assert not np.allclose(
        first.get_layer("stem_conv").kernel.numpy(),
        untrained[0].get_layer("stem_conv").kernel.numpy(),
    )
    assert all(np.isfinite(c["train_loss"]) for h in clf.history_ for c in h["candidates"])
    for member in clf.ensemble_.members:
        assert member.get_layer("stem_conv").compute_dtype == "float16"
        assert {keras.backend.standardize_dtype(w.dtype) for w in member.weights} == {"float32"}
    x = cifar_strings["x_test"]
    served = clf.ensemble_(x)
    assert keras.backend.standardize_dtype(served.dtype) == "float32"
    probabilities = clf.predict_proba(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    path = str(tmp_path / "mixed.keras")
    clf.save(path)
    np.testing.assert_array_equal(AdaNASClassifier.load(path).predict_proba(x), probabilities)
