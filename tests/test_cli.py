import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import is_png
from PIL import Image

from keras_adanas import AdaNASClassifier
from keras_adanas.cli import main


@pytest.fixture(scope="module")
def small_npz(cifar10, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(
        path,
        x_train=cifar10["x_train"][:64],
        y_train=cifar10["y_train"][:64],
        x_test=cifar10["x_test"][:32],
        y_test=cifar10["y_test"][:32],
    )
    return str(path)


@pytest.mark.slow
def test_fit_report_evaluate_predict_export(small_npz, tmp_path, capsys):
    project = str(tmp_path / "project")
    argv = ["fit", small_npz, "--directory", project, "--preset", "smoke"]
    argv += ["--max-iterations", "1", "--steps-per-iteration", "2", "--batch-size", "16"]
    argv += ["--seed", "0", "--verbose", "0", "--dtype-policy", "mixed_bfloat16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 members, 4,373 served parameters" in out and "reached max_iterations=1" in out
    clf = AdaNASClassifier.load(project)
    # The smoke preset with the flags' overrides.
    assert clf.distillation == "adaptive" and clf.mixture_weights == "scalar"
    assert clf.steps_per_iteration == 2 and clf.batch_size == 16 and clf.seed == 0
    # A bfloat16 member, exported below like any other.
    assert clf.dtype_policy == "mixed_bfloat16"
    assert clf.ensemble_.members[0].get_layer("stem_conv").compute_dtype == "bfloat16"

    assert main(["report", project]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["iter", "candidate", "train", "loss"]
    row = table[2].split()
    assert row[:2] == ["1", "1@24"] and float(row[2]) > 0 and row[3:6] == ["-", "yes", "2"]
    # With data, `report` draws the errors plot beside the architectures one;
    # a .keras file draws only with --plots.
    assert main(["report", project, "--data", small_npz]) == 0
    out = capsys.readouterr().out
    assert "iteration 1:" in out and "Wrote" in out
    for name in ("errors.png", "architectures.png"):
        assert is_png(os.path.join(project, "plots", name))
    saved = str(tmp_path / "model.keras")
    clf.save(saved)
    assert main(["report", saved, "--data", small_npz]) == 2
    assert "pass `--plots DIR` too" in capsys.readouterr().err

    assert main(["evaluate", project, small_npz]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == pytest.approx(clf.evaluate(small_npz), rel=1e-6)

    output = str(tmp_path / "predictions.npz")
    assert main(["predict", project, small_npz, "--output", output]) == 0
    with np.load(output) as predictions:
        np.testing.assert_allclose(
            predictions["probabilities"], clf.predict_proba(small_npz), rtol=1e-5, atol=1e-7
        )
        np.testing.assert_array_equal(predictions["labels"], clf.predict(small_npz))
        assert "files" not in predictions
    # A folder: each row says which file it is, in the order read.
    x_test = np.load(small_npz)["x_test"]
    layouts = {"photos": ["b.png", "a.png", "c.png"], "labelled": ["dog/d.png", "cat/e.png"]}
    for folder, names in layouts.items():
        for name, image in zip(names, x_test, strict=False):
            (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / folder / name)
    read = {"photos": ["a.png", "b.png", "c.png"], "labelled": ["cat/e.png", "dog/d.png"]}
    rows = {"photos": [1, 0, 2], "labelled": [1, 0]}
    for folder in layouts:
        assert main(["predict", project, str(tmp_path / folder), "--output", output]) == 0
        with np.load(output) as predictions:
            assert predictions["files"].tolist() == [os.path.normpath(f) for f in read[folder]]
            np.testing.assert_array_equal(predictions["labels"], clf.predict(x_test[rows[folder]]))

    saved_model = str(tmp_path / "saved_model")
    assert main(["export", project, saved_model]) == 0
    model = tf.saved_model.load(saved_model)
    served = model.serve(np.load(small_npz)["x_test"])
    # The SavedModel computes with TensorFlow's kernels: in bfloat16 (8
    # significant bits) another backend's kernels round differently.
    tolerance = 1e-5 if keras.backend.backend() == "tensorflow" else 1e-2
    np.testing.assert_allclose(served.numpy(), clf.predict_proba(small_npz), atol=tolerance)
