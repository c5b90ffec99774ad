"""The bad-input catalogue: every public entry point fed the wrong things.

Each bad input must raise a clear `ValueError`/`TypeError` (or
`FileNotFoundError`, `NotFittedError`) naming what was received, before any
training starts (`train_candidates` and `build_candidates` fail the test if
called) and before anything is written (the project directory is left exactly
as it was).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from sklearn.exceptions import NotFittedError

import keras_adanas.search.loop as loop_module
from keras_adanas import AdaNASClassifier, Ensemble, MixtureWeights, NASNetA, load_images
from keras_adanas.project import ProjectDirectory, data_fingerprint
from keras_adanas.search import SearchState


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started on bad input")

    monkeypatch.setattr(loop_module, "train_candidates", fail)
    monkeypatch.setattr(loop_module, "build_candidates", fail)


@pytest.fixture(scope="module")
def images(cifar10):
    x, y = cifar10["x_train"][:8], np.array([0, 1] * 4)
    return x, y


def snapshot(directory):
    """Every file under `directory` with its size and modification time."""
    if not os.path.exists(directory):
        return None
    return {
        os.path.join(root, name): (
            os.path.getsize(os.path.join(root, name)),
            os.stat(os.path.join(root, name)).st_mtime_ns,
        )
        for root, _, names in os.walk(directory)
        for name in names
    }


# === Classifier arguments ===

BAD_ARGUMENTS = [
    ({"budget": "lots"}, ValueError, "budget='lots'"),
    ({"budget": -5}, ValueError, "budget=-5"),
    ({"budget": "0"}, ValueError, "budget='0'"),
    ({"budget": 2.5}, TypeError, "budget=2.5"),
    ({"budget": True}, TypeError, "budget=True"),
    ({"budget": 1000}, ValueError, "below the smallest first candidate"),
    ({"generator": "random"}, ValueError, "generator='random'"),
    ({"generator": 42}, TypeError, "generator=42"),
    ({"generator": object()}, TypeError, "candidates"),
    ({"architecture": "6@25"}, ValueError, "filters=25"),
    ({"architecture": "six"}, ValueError, "architecture='six'"),
    ({"architecture": "0@24"}, ValueError, "depth=0"),
    ({"architecture": 768}, TypeError, "architecture=768"),
    ({"distillation": "akd"}, ValueError, "distillation='akd'"),
    ({"kd_temperature": 0}, ValueError, "kd_temperature=0"),
    ({"kd_temperature": "1"}, TypeError, "kd_temperature='1'"),
    ({"kd_weight": -1.0}, ValueError, "kd_weight=-1.0"),
    ({"mixture_weights": "matrix"}, ValueError, "mixture_weights='matrix'"),
    ({"max_iterations": 0}, ValueError, "max_iterations=0"),
    ({"max_iterations": 2.5}, TypeError, "max_iterations=2.5"),
    ({"epochs_per_iteration": 0}, ValueError, "epochs_per_iteration=0"),
    ({"steps_per_iteration": -3}, ValueError, "steps_per_iteration=-3"),
    ({"epochs_per_iteration": 1, "steps_per_iteration": 5}, ValueError, "one of"),
    ({"batch_size": "32"}, TypeError, "batch_size='32'"),
    ({"batch_size": 0}, ValueError, "batch_size=0"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate=-0.1"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate=nan"),
    ({"learning_rate": "0.1"}, ValueError, "learning_rate='0.1'"),
    ({"augment": "yes"}, TypeError, "augment='yes'"),
    ({"warm_start": 1}, TypeError, "warm_start=1"),
    ({"overwrite": "no"}, TypeError, "overwrite='no'"),
    ({"jit_compile": "xla"}, ValueError, "jit_compile='xla'"),
    ({"seed": -1}, ValueError, "seed=-1"),
    ({"seed": 1.5}, TypeError, "seed=1.5"),
    ({"seed": 2**63}, ValueError, "must be <= 4294967295. Received: seed=9223372036854775808"),
    ({"synchronized_batch_norm": "yes"}, ValueError, "synchronized_batch_norm='yes'"),
    ({"recipe": "fast"}, ValueError, "recipe='fast'"),
    ({"mixture_fit": "late"}, ValueError, "mixture_fit='late'"),
    ({"drop_path_keep_prob": 0}, ValueError, r"in \(0.0, 1.0\]. Received: drop_path_keep_prob=0"),
    ({"label_smoothing": 1.0}, ValueError, "label_smoothing=1.0"),
    ({"weight_decay": -1e-4}, ValueError, "weight_decay=-0.0001"),
    ({"weight_decay": "1e-3"}, TypeError, "weight_decay='1e-3'"),
    ({"warmup": -0.1}, ValueError, "warmup=-0.1"),
    ({"cutout_size": -1}, ValueError, "cutout_size=-1"),
    (
        {"cutout_size": 33},
        ValueError,
        "at most the images' shorter side, 32. Received: cutout_size=33",
    ),
    ({"auxiliary_weight": "x"}, TypeError, "auxiliary_weight='x'"),
    ({"recompute_statistics": 1}, TypeError, "recompute_statistics=1"),
    ({"synchronized_batch_norm": 1}, ValueError, "synchronized_batch_norm=1"),
    ({"directory": ""}, ValueError, "empty or blank path is not one. Received: directory=''"),
    ({"directory": "   "}, ValueError, "empty or blank path"),
    ({"verbose": 3}, ValueError, "verbose=3"),
    ({"verbose": True}, ValueError, "verbose=True"),
    ({"directory": 42}, TypeError, "directory=42"),
    ({"directory": "{file}"}, ValueError, "`directory` is an existing file.*a_file'"),
    ({"directory": "{file}/project"}, ValueError, "`directory` lies under '.*a_file', which"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS)
def test_bad_classifier_arguments(kwargs, error, message, images, tmp_path):
    directory = tmp_path / "project"
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    arguments = {"architecture": "1@24", "directory": str(directory), **kwargs}
    if isinstance(arguments["directory"], str):
        arguments["directory"] = arguments["directory"].replace("{file}", str(a_file))
    with pytest.raises(error, match=message):
        AdaNASClassifier(**arguments).fit(*images)
    assert not directory.exists() and sorted(os.listdir(tmp_path)) == ["a_file"]
    assert a_file.read_text() == ""


# === Data given to fit ===


def uint8(shape):
    return np.zeros(shape, np.uint8)


def fit_cases(x, y):
    floats = x.astype("float32")
    return {
        "no images": ((None, y), {}, TypeError, "Received: images of type NoneType"),
        "missing file": (("no/such/file.npz",), {}, FileNotFoundError, "no/such/file.npz"),
        "strings as images": (([["a"]] * 8, y), {}, TypeError, "integer or float pixel"),
        "bool images": ((x > 100, y), {}, TypeError, "dtype=bool"),
        "flat images": ((x.reshape(8, -1), y), {}, ValueError, "rank 4"),
        "rank 5": ((x[..., None], y), {}, ValueError, "rank 4"),
        "empty": ((uint8((0, 32, 32, 3)), []), {}, ValueError, "empty"),
        "one class": ((x, np.full(8, 3)), {}, ValueError, "at least 2 classes.*all 3"),
        "one named class": ((x, ["cat"] * 8), {}, ValueError, "at least 2 classes"),
        "NaN pixels": ((np.where(x > 250, np.nan, floats), y), {}, ValueError, "NaN"),
        "pixels over 255": ((floats * 2, y), {}, ValueError, r"\[0, 255\]"),
        "negative pixels": ((floats - 1, y), {}, ValueError, r"\[0, 255\]"),
        "pixels in [0, 1]": ((floats / 255, y), {}, ValueError, "multiply the images by 255"),
        "no labels": ((x,), {}, ValueError, "needs labels"),
        "labels too short": ((x, y[:5]), {}, ValueError, "8 images and 5 labels"),
        "2-D labels": ((x, np.zeros((8, 3))), {}, ValueError, r"labels.shape=\(8, 3\)$"),
        "one-hot labels": (
            (x, np.eye(2)[y.astype(int) % 2]),
            {},
            ValueError,
            r"\(8, 2\) \(one-hot labels: pass `labels.argmax\(axis=1\)`\)",
        ),
        "a None among the labels": (
            (x, [0, 1, None, 1, 0, 1, 0, 1]),
            {},
            TypeError,
            "all ints .* or all strings .* Received: None of type NoneType at index 2",
        ),
        "names and indices mixed": (
            (x, ["cat", "dog", 1, "cat", "dog", "cat", "dog", "cat"]),
            {},
            TypeError,
            "Received: 1 of type int at index 2",
        ),
        "fractional labels": ((x, y + 0.5), {}, TypeError, "ints .* or strings"),
        "4x4 images": ((uint8((8, 4, 4, 3)), y), {}, ValueError, "at least 9x9"),
        "y beside a path": (("cifar10", y), {}, ValueError, "`y` must be None"),
        "dataset of images only": (
            (tf.data.Dataset.from_tensor_slices(x),),
            {},
            ValueError,
            "`fit` needs labels",
        ),
        "dataset of triples": (
            (tf.data.Dataset.from_tensor_slices((x, y, y)),),
            {},
            ValueError,
            r"\(image, label\) pairs, or images alone",
        ),
        "a dataset that repeats forever": (
            (tf.data.Dataset.from_tensor_slices((x, y)).repeat(),),
            {},
            ValueError,
            r"must be finite.*drop its `\.repeat\(\)`",
        ),
        "validation images of another shape": (
            (x, y),
            {"validation_data": (uint8((4, 28, 28, 3)), [0, 1, 0, 1])},
            ValueError,
            "validation_data",
        ),
        "validation data without labels": (
            (x, y),
            {"validation_data": x},
            ValueError,
            "`validation_data` needs labels",
        ),
        "validation labels of an unknown class": (
            (x, y),
            {"validation_data": (x[:2], [0, 7])},
            ValueError,
            "outside the class range",
        ),
        "a validation triple": (
            (x, y),
            {"validation_data": (x, y, np.ones(len(y)))},
            ValueError,
            "sample weights are not supported. Received: a tuple of 3 items",
        ),
        "float images in [0, 1] with an outlier": (
            (_unit_range_with_outlier(x), y),
            {},
            ValueError,
            "multiply the images by 255",
        ),
        "callbacks not a list": ((x, y), {"callbacks": "early"}, TypeError, "callbacks='early'"),
        "callbacks not Callbacks": ((x, y), {"callbacks": [object()]}, TypeError, "callbacks"),
    }


def _unit_range_with_outlier(x):
    """`x` scaled to [0, 1], one pixel at 200: past a max-based check."""
    scaled = x.astype("float32") / 255.0
    scaled[0, 0, 0, 0] = 200.0
    return scaled


FIT_CASES = list(fit_cases(np.zeros((8, 32, 32, 3), np.uint8), np.zeros(8)))


@pytest.mark.parametrize("case", FIT_CASES)
def test_bad_data_given_to_fit(case, images, tmp_path):
    args, kwargs, error, message = fit_cases(*images)[case]
    directory = tmp_path / "project"
    clf = AdaNASClassifier(architecture="1@24", directory=str(directory))
    with pytest.raises(error, match=message):
        clf.fit(*args, **kwargs)
    assert not directory.exists()


# === A fitted classifier: predict, score, evaluate, save, load, export ===


def untrained_classifier_file(path):
    """A saved classifier with one untrained 1@24 member (no training needed)."""
    member = NASNetA("1@24", 10, seed=0).without_auxiliary_head(name="member_1")
    ensemble = Ensemble([member], MixtureWeights("uniform", 1), classes=range(10))
    classifier = AdaNASClassifier(architecture="1@24")
    classifier._set_fitted(SearchState.of_ensemble(ensemble, [], []))
    classifier.save(path)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return untrained_classifier_file(tmp_path_factory.mktemp("saved") / "classifier.keras")


@pytest.fixture(scope="module")
def fitted(saved):
    return AdaNASClassifier.load(saved)


def predict_cases(x):
    nan = x.astype("float32")
    nan[0, 0, 0, 0] = np.nan
    return {
        "predict, other image size": (
            "predict",
            (np.zeros((2, 28, 28, 3), "uint8"),),
            r"\(32, 32, 3\)",
        ),
        "predict, one image": ("predict", (x[0],), r"one image: pass a batch of one"),
        "predict, a missing path": ("predict", ("nothing.npz",), "nothing.npz"),
        "predict, NaN pixels": ("predict", (nan,), "NaN"),
        "predict, flat images": ("predict", (x.reshape(len(x), -1),), "rank 4"),
        "predict_proba, pixels over 255": ("predict_proba", (x * 2.0,), r"\[0, 255\]"),
        "score, no labels": ("score", (x,), "needs labels"),
        "score, unknown class": ("score", (x[:2], [0, 12]), "outside the class range"),
        "predict, a dict": ("predict", ({"images": x},), r"pass the pair `\(images, labels\)`"),
        "score, one weight too few": (
            "score",
            (x[:2], [0, 1], [1.0]),
            r"one weight per image, shape \(2,\). Received: sample_weight.shape=\(1,\)",
        ),
        "score, a negative weight": ("score", (x[:2], [0, 1], [1.0, -1.0]), "non-negative"),
        "score, all weights zero": ("score", (x[:2], [0, 1], [0, 0]), "not all zero"),
        "score, weights not numbers": ("score", (x[:2], [0, 1], ["a", "b"]), "must be numbers"),
        "evaluate, labels too long": ("evaluate", (x[:2], [0, 1, 2]), "2 images and 3 labels"),
        "evaluate, named labels for int classes": ("evaluate", (x[:1], ["cat"]), "outside"),
        "predict, [0, 1] floats with an outlier": (
            "predict",
            (_unit_range_with_outlier(x + 100),),
            "multiply the images by 255",
        ),
    }


PREDICT_CASES = list(predict_cases(np.zeros((4, 32, 32, 3), "uint8")))


@pytest.mark.parametrize("case", PREDICT_CASES)
def test_bad_data_given_to_a_fitted_classifier(case, fitted, images):
    method, args, message = predict_cases(images[0][:4])[case]
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=message):
        getattr(fitted, method)(*args)


def test_labels_given_to_predict_are_not_checked(fitted, images):
    """predict reads images alone: the labels beside them, here names where
    the classes are indices, are no error (score's are checked above)."""
    x = images[0][:4]
    expected = fitted.predict(x)
    names = ["cat", "dog", "cat", "cat"]
    np.testing.assert_array_equal(fitted.predict((x, names)), expected)
    dataset = tf.data.Dataset.from_tensor_slices((x, names)).batch(3)
    np.testing.assert_array_equal(fitted.predict(dataset), expected)
    with pytest.raises(ValueError, match="outside the class range"):
        fitted.score(dataset)


def test_predict_reads_a_folder_of_image_files(fitted, images, tmp_path):
    from PIL import Image

    x = images[0][:3]
    for i, image in enumerate(x):
        Image.fromarray(image).save(tmp_path / f"photo_{i}.png")
    np.testing.assert_array_equal(fitted.predict(tmp_path), fitted.predict(x))
    with pytest.raises(ValueError, match="`fit` needs labels"):
        AdaNASClassifier(architecture="1@24").fit(tmp_path)


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score", "evaluate", "save", "export"]
)
def test_an_unfitted_classifier_refuses(method, tmp_path):
    args = {"save": (tmp_path / "c.keras",), "export": (tmp_path / "sm",)}.get(
        method, (np.zeros((1, 32, 32, 3), "uint8"), [0])
    )
    if method in ("predict", "predict_proba"):
        args = args[:1]
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(AdaNASClassifier(), method)(*args)
    assert not os.listdir(tmp_path)


def load_cases(tmp_path, saved):
    (tmp_path / "corrupt.keras").write_bytes(b"garbage")
    (tmp_path / "half.keras").write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    (tmp_path / "record.json").write_text("{}")
    (tmp_path / "empty_project").mkdir()
    (tmp_path / "saved_model" / "variables").mkdir(parents=True)
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(b"")
    NASNetA("1@24", 10).save(tmp_path / "plain.keras")
    return {
        "missing file": (tmp_path / "missing.keras", FileNotFoundError, "No saved classifier"),
        "corrupt file": (tmp_path / "corrupt.keras", ValueError, "not a readable .keras file"),
        "half-written file": (tmp_path / "half.keras", ValueError, "not a readable .keras"),
        "JSON file": (tmp_path / "record.json", ValueError, "not a readable .keras file"),
        "plain Keras model": (tmp_path / "plain.keras", ValueError, "not a keras_adanas"),
        "project without ensemble": (
            tmp_path / "empty_project",
            FileNotFoundError,
            "No saved classifier",
        ),
        "SavedModel": (tmp_path / "saved_model", ValueError, "is a SavedModel .* `export`"),
    }


LOAD_CASES = [
    "missing file",
    "corrupt file",
    "half-written file",
    "JSON file",
    "plain Keras model",
    "project without ensemble",
    "SavedModel",
]


@pytest.mark.parametrize("case", LOAD_CASES)
def test_loading_what_is_not_a_classifier(case, saved, tmp_path):
    path, error, message = load_cases(tmp_path, saved)[case]
    with pytest.raises(error, match=message):
        AdaNASClassifier.load(path)


def test_save_needs_a_keras_path(fitted, tmp_path):
    with pytest.raises(ValueError, match="end in '.keras'. Received: path="):
        fitted.save(tmp_path / "classifier.h5")
    assert not os.listdir(tmp_path)
    (tmp_path / "folder.keras").mkdir()
    with pytest.raises(ValueError, match="is a folder, not a .keras file. Received: path="):
        fitted.save(tmp_path / "folder.keras")
    assert os.listdir(tmp_path) == ["folder.keras"] and not os.listdir(tmp_path / "folder.keras")


def test_export_refuses_to_replace_what_is_not_a_saved_model(fitted, tmp_path):
    """The export replaces its folder as a whole: a file, a project directory
    or a path under a file is refused, and every file is left as it was."""
    from keras_adanas.serving import check_export_path

    saved_file = tmp_path / "classifier.keras"
    saved_file.write_bytes(b"a saved classifier")
    project = tmp_path / "project"
    (project / "iteration_001").mkdir(parents=True)
    (project / "search.json").write_text("{}")
    cases = [
        (saved_file, ValueError, "is an existing file.*Received: path='.*classifier.keras'"),
        (project, ValueError, "holds no SavedModel.*Received: path='.*project'"),
        (saved_file / "saved_model", ValueError, "lies under '.*classifier.keras', which is a"),
        (7, TypeError, "Received: path=7 of type int"),
    ]
    before = snapshot(tmp_path)
    for path, error, message in cases:
        with pytest.raises(error, match=message):
            fitted.export(path)
    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["classifier.keras", "project"]
    assert sorted(os.listdir(project)) == ["iteration_001", "search.json"]

    # What it may replace: a new folder, an empty one, an earlier SavedModel's.
    (tmp_path / "empty").mkdir()
    (tmp_path / "earlier" / "variables").mkdir(parents=True)
    (tmp_path / "earlier" / "saved_model.pb").write_bytes(b"")
    for name in ("new", "empty", "earlier"):
        assert check_export_path(tmp_path / name) == str(tmp_path / name)


# === A project directory that holds another search ===


@pytest.fixture
def project(images, saved, tmp_path):
    """A directory holding a 1-member search of 1@24 on `images`."""
    x, y = images
    path = tmp_path / "project"
    directory = ProjectDirectory(path)
    recorded = AdaNASClassifier(architecture="1@24", directory=str(path))
    train = load_images(x, y)
    directory.record_search(
        recorded._params_record(), {"train": data_fingerprint(train), "selection": None}
    )
    os.replace(untrained_classifier_file(tmp_path / "ensemble.keras"), directory.ensemble_path)
    return path


def project_cases(x, y):
    return {
        "other arguments": (
            {"distillation": "adaptive"},
            (x, y),
            "other arguments: distillation='none' there, 'adaptive' here",
        ),
        "other images": ({}, (x[::-1], y), "other data .*other train images or labels"),
        "more images": ({}, (np.concatenate([x, x]), np.concatenate([y, y])), "examples: 8"),
        "validation data only here": (
            {},
            (x, y, (x, y)),
            "selection data given here only",
        ),
        "other image size": ({}, (np.zeros((8, 28, 28, 3), "uint8"), y), "takes images"),
    }


PROJECT_CASES = list(project_cases(np.zeros(1), np.zeros(1)))


@pytest.mark.parametrize("case", PROJECT_CASES)
def test_a_directory_with_another_search_is_refused_and_left_as_it_was(case, project, images):
    kwargs, data, message = project_cases(*images)[case]
    before = snapshot(project)
    clf = AdaNASClassifier(architecture="1@24", directory=str(project), verbose=0, **kwargs)
    args, validation = data[:2], (data[2] if len(data) > 2 else None)
    with pytest.raises(ValueError, match=message):
        clf.fit(*args, validation_data=validation)
    assert snapshot(project) == before


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_damaged_search_record_is_refused(content, project, images):
    (project / "search.json").write_text(content)
    before = snapshot(project)
    clf = AdaNASClassifier(architecture="1@24", directory=str(project), verbose=0)
    with pytest.raises(ValueError, match="search.json"):
        clf.fit(*images)
    assert snapshot(project) == before


# === Command-line flags ===

BAD_FLAGS = [
    (["fit", "d.npz", "--directory", "{dir}", "--batch-size", "many"], "--batch-size: invalid int"),
    (["fit", "d.npz", "--directory", "{dir}", "--seed", "1.5"], "--seed: invalid int"),
    (["fit", "d.npz", "--directory", "{dir}", "--learning-rate", "x"], "--learning-rate: invalid"),
    (["fit", "d.npz", "--directory", "{dir}", "--preset", "huge"], "--preset: invalid choice"),
    (["fit", "d.npz", "--directory", "{dir}", "--epochs", "3"], "unrecognized arguments"),
    (["fit", "d.npz"], "the following arguments are required: --directory"),
    (["fit", "--directory", "{dir}"], "the following arguments are required: data"),
    (["train", "d.npz"], "invalid choice: 'train'"),
    ([], "the following arguments are required: COMMAND"),
    (["predict", "model", "d.npz"], "the following arguments are required: --output"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS)
def test_bad_command_line_flags(argv, message, tmp_path, capsys):
    from keras_adanas.cli import main

    directory = tmp_path / "project"
    with pytest.raises(SystemExit) as exit:
        main([a.replace("{dir}", str(directory)) for a in argv])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err
    assert not directory.exists()


def bad_values(data_path):
    fit = ["fit", data_path, "--directory", "{dir}", "--architecture", "1@24"]
    return {
        "architecture": (fit + ["--architecture", "6@25"], "filters=25"),
        "budget": (fit + ["--budget", "lots"], "budget='lots'"),
        "small budget": (fit + ["--budget", "1000"], "below the smallest first candidate"),
        "distillation": (fit + ["--distillation", "akd"], "distillation='akd'"),
        "generator": (fit + ["--generator", "random"], "generator='random'"),
        "verbose": (fit + ["--verbose", "5"], "verbose=5"),
        "epochs and steps": (
            fit + ["--epochs-per-iteration", "1", "--steps-per-iteration", "5"],
            "one of",
        ),
        "batch size": (fit + ["--batch-size", "0"], "batch_size=0"),
        "missing data": (["fit", "none.npz", "--directory", "{dir}"], "none.npz"),
        "missing validation data": (
            fit + ["--validation-data", "none.npz"],
            "none.npz",
        ),
        "predict to csv": (["predict", "{model}", data_path, "--output", "p.csv"], "'.npz'"),
        "evaluate a corrupt model": (["evaluate", "{corrupt}", data_path], "not a readable"),
        "report a missing project": (["report", "{dir}"], "No saved classifier"),
        "export a missing model": (["export", "{dir}", "{dir}_saved"], "No saved classifier"),
        "export over a file": (["export", "{model}", "{corrupt}"], "is an existing file"),
    }


CLI_VALUE_CASES = list(bad_values("d.npz"))


@pytest.mark.parametrize("case", CLI_VALUE_CASES)
def test_bad_command_line_values(case, saved, cifar10_path, tmp_path, capsys):
    from keras_adanas.cli import main

    argv, message = bad_values(cifar10_path)[case]
    directory = tmp_path / "project"
    (tmp_path / "corrupt.keras").write_bytes(b"garbage")
    paths = {
        "{dir}": str(directory),
        "{model}": str(saved),
        "{corrupt}": str(tmp_path / "corrupt.keras"),
    }
    for key, value in paths.items():
        argv = [a.replace(key, value) for a in argv]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"keras-adanas {argv[0]}: error:") and message in error
    assert not directory.exists() and not os.path.exists(f"{directory}_saved")
    assert not os.path.exists("p.csv")


# === Inputs that used to fail late, silently or with a traceback ===


def test_numpy_scalars_are_accepted_and_recorded_as_plain_json(images, tmp_path):
    """A grid built from arrays (GridSearchCV) passes NumPy integers: they
    pass the checks, and the search's record holds plain JSON numbers."""
    clf = AdaNASClassifier(
        architecture="1@24",
        budget=np.int64(10**6),
        steps_per_iteration=np.int64(2),
        seed=np.int64(3),
        verbose=np.int64(0),
        learning_rate=np.float32(0.05),
        directory=str(tmp_path / "project"),
    )
    with pytest.raises(AssertionError, match="training started"):
        clf.fit(*images)  # past every check and the record: no_training stops it
    params = json.loads((tmp_path / "project" / "search.json").read_text())["params"]
    assert params["budget"] == 10**6 and params["seed"] == 3 and params["verbose"] == 0
    assert type(params["steps_per_iteration"]) is int


def test_integer_labels_make_the_sorted_distinct_classes(images):
    x = images[0][:4]
    data = load_images(x, [10**7, 0, 10**7, 0])
    assert data.classes == (0, 10**7) and data.labels.tolist() == [1, 0, 1, 0]
    data = load_images(x, [2**40, -3, 5, 5])
    assert data.classes == (-3, 5, 2**40) and data.labels.tolist() == [2, 0, 1, 1]


def test_a_dataset_of_unknown_length_that_never_ends_is_refused(images, monkeypatch):
    import keras_adanas.data.datasets as data_module

    x, y = images

    def forever():
        label = 0
        while True:
            label = 1 - label
            yield x[0], label

    dataset = tf.data.Dataset.from_generator(
        forever,
        output_signature=(
            tf.TensorSpec((32, 32, 3), tf.uint8),
            tf.TensorSpec((), tf.int64),
        ),
    )
    monkeypatch.setattr(data_module, "dataset_read_limit", lambda: 100 * x[0].nbytes)
    with pytest.raises(ValueError, match="unknown length must end.*`dataset.take\\(n\\)`"):
        load_images(dataset)
    # A finite one of unknown length reads whole.
    assert len(load_images(dataset.take(5))) == 5


def test_the_pixel_rule_is_the_same_for_fit_and_predict(fitted, images):
    x = images[0][:4]
    dark = np.zeros(x.shape, "float32")
    dark[:, :4, :4] = 1.0  # raw pixel values 0 and 1: dark, not scaled
    assert fitted.predict(dark).shape == (4,)
    load_images(dark, [0, 1, 0, 1])  # and fit reads them
    for scaled in (x / 255.0, _unit_range_with_outlier(x)):
        with pytest.raises(ValueError, match="multiply the images by 255"):
            load_images(scaled, [0, 1, 0, 1])
        with pytest.raises(ValueError, match="multiply the images by 255"):
            fitted.predict(scaled)


def test_sixteen_bit_images_are_scaled_to_eight_bits(tmp_path):
    from PIL import Image

    values = np.array([[0, 257 * 100], [257 * 200, 65535]], np.uint16)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(values).save(tmp_path / label / "image.png")
        assert Image.open(tmp_path / label / "image.png").mode.startswith("I")
    data = load_images(tmp_path)
    assert data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[0, :, :, 0], [[0, 100], [200, 255]])


def test_a_decompression_bomb_is_a_value_error(tmp_path, monkeypatch):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / label / "image.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="Could not read the image .*image.png"):
        load_images(tmp_path)


def test_predict_reads_an_npy_file_of_images(fitted, images, tmp_path):
    x = images[0][:3]
    np.save(tmp_path / "images.npy", x)
    np.testing.assert_array_equal(fitted.predict(str(tmp_path / "images.npy")), fitted.predict(x))
    with pytest.raises(ValueError, match="`fit` needs labels"):
        AdaNASClassifier(architecture="1@24").fit(str(tmp_path / "images.npy"))


@pytest.mark.parametrize(
    "record",
    [
        {"params": {}, "data": 5},
        {"params": [], "data": {}},
        {"params": {}, "data": {"train": "x"}},
    ],
)
def test_a_search_record_of_the_wrong_shape_is_refused(record, project, images):
    (project / "search.json").write_text(json.dumps(record))
    before = snapshot(project)
    clf = AdaNASClassifier(architecture="1@24", directory=str(project), verbose=0)
    with pytest.raises(ValueError, match="not a keras_adanas search record"):
        clf.fit(*images)
    assert snapshot(project) == before


def test_damaged_metadata_is_a_value_error(tmp_path):
    import keras

    member = NASNetA("1@24", 10, seed=0).without_auxiliary_head(name="member_1")
    for metadata, message in [
        ({"params": {}, "members": []}, "history missing"),
        ({"params": {"size": 3}, "members": [], "history": []}, r"does not know: \['size'\]"),
    ]:
        ensemble = Ensemble([member], MixtureWeights("uniform", 1), metadata=metadata)
        keras.saving.save_model(ensemble, tmp_path / "damaged.keras")
        with pytest.raises(ValueError, match=message):
            AdaNASClassifier.load(tmp_path / "damaged.keras")


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2]",
        '{"signature": {}, "epoch": 1, "weights": "../../secret.npz", "epoch_logs": []}',
        '{"signature": {}, "epoch": true, "weights": "epoch_0001.state.npz", "epoch_logs": []}',
    ],
)
def test_a_damaged_backup_record_is_ignored(content, tmp_path):
    from keras_adanas.backup import IterationBackup

    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "backup.json").write_text(content)
    assert IterationBackup(tmp_path / "backup", {}).read() is None


def test_a_preset_takes_epochs_instead_of_its_steps():
    from keras_adanas.presets import preset_arguments

    arguments = preset_arguments("smoke", epochs_per_iteration=1)
    assert arguments["epochs_per_iteration"] == 1 and arguments["steps_per_iteration"] is None
    arguments = preset_arguments("demo", steps_per_iteration=7)
    assert arguments["steps_per_iteration"] == 7 and arguments["epochs_per_iteration"] is None


def test_export_to_a_symbolic_link_replaces_its_target_and_keeps_the_link(tmp_path):
    from keras_adanas.io_utils import write_directory_atomically

    target = tmp_path / "models" / "v1"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"old")
    (tmp_path / "current").symlink_to(target)

    def write(folder):
        (tmp_path / folder / "saved_model.pb").write_bytes(b"new")

    write_directory_atomically(write, tmp_path / "current")
    assert os.path.islink(tmp_path / "current")
    assert (tmp_path / "current" / "saved_model.pb").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["current", "models"]
    assert sorted(os.listdir(tmp_path / "models")) == ["v1"]


# === The command line: one line and exit status 2 for every anticipated error ===


def run_cli(argv, capsys):
    from keras_adanas.cli import main

    status = main([str(a) for a in argv])
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return status, error


def test_cli_one_line_errors_for_files_and_folders(saved, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    long_name = tmp_path / ("x" * 300)
    status, error = run_cli(["fit", "digits", "--directory", long_name], capsys)
    assert status == 2 and error.startswith("keras-adanas fit: error: File name too long")

    (tmp_path / "out.npz").mkdir()
    status, error = run_cli(["predict", saved, "digits", "--output", "out.npz"], capsys)
    assert status == 2 and "`--output` is an existing folder" in error

    (tmp_path / "plots.png").write_text("mine")
    status, error = run_cli(["report", saved, "--plots", "plots.png"], capsys)
    assert status == 2 and "`--plots` is an existing file" in error
    assert (tmp_path / "plots.png").read_text() == "mine"


def test_cli_refuses_a_plots_link_out_of_the_project(saved, tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    os.replace(untrained_classifier_file(tmp_path / "c.keras"), project / "ensemble.keras")
    (tmp_path / "elsewhere").mkdir()
    (project / "plots").symlink_to(tmp_path / "elsewhere")
    status, error = run_cli(["report", project], capsys)
    assert status == 2 and "is a symbolic link" in error
    assert os.listdir(tmp_path / "elsewhere") == []


def test_cli_offline_download_failure_is_one_line(tmp_path, capsys, monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://example: None -- [Errno -3] no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    status, error = run_cli(["fit", "cifar10", "--directory", tmp_path / "p"], capsys)
    assert status == 2 and "Could not download 'cifar10' through keras.datasets" in error
    assert not (tmp_path / "p").exists()


def test_cli_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(AdaNASClassifier, "fit", interrupted)
    status, error = run_cli(["fit", "digits", "--directory", tmp_path / "p"], capsys)
    assert status == 130
    assert error == "keras-adanas fit: interrupted. Run the same command again to resume.\n"


def test_cli_takes_epochs_over_a_presets_steps(tmp_path, capsys, monkeypatch):
    seen = {}

    def record(self, *args, **kwargs):
        seen.update(self.get_params())
        raise ValueError("stop here")

    monkeypatch.setattr(AdaNASClassifier, "fit", record)
    argv = ["fit", "digits", "--directory", tmp_path / "p", "--preset", "smoke"]
    status, _ = run_cli([*argv, "--epochs-per-iteration", "1"], capsys)
    assert status == 2 and seen["epochs_per_iteration"] == 1
    assert seen["steps_per_iteration"] is None
