"""The library where TensorFlow is not installed: the NumPy input pipeline
(`keras_adanas.data.batches`) in process, and a whole search on JAX in a process
that cannot import TensorFlow."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import REPO

from keras_adanas.data import CIFARAugmentation, load_images
from keras_adanas.data import pipeline as pipeline_module
from keras_adanas.data.batches import EvaluationBatches, TrainingBatches


@pytest.fixture
def without_tensorflow(monkeypatch):
    """`keras_adanas.data`'s pipeline as it is where `import tensorflow` fails."""
    monkeypatch.setattr(pipeline_module, "tf", None)


def numbered_images(count=50, side=16):
    """Image `i` holds the pixel value `i`, so a batch tells which images it
    holds; labels are `i % 10`."""
    images = np.repeat(np.arange(count, dtype=np.uint8), side * side * 3)
    images = images.reshape(count, side, side, 3)
    return load_images(images, np.arange(count) % 10)


def image_ids(batch):
    images, labels = batch
    ids = images[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(labels, ids % 10)
    return ids


def test_training_batches_shuffle_each_epoch_with_the_seed(without_tensorflow):
    data = numbered_images()
    batches = data.training_dataset(16, augment=False, seed=3, epochs=3)
    assert isinstance(batches, TrainingBatches)
    assert batches.num_batches == 3 * 4  # ceil(50 / 16) per epoch
    images, labels = batches[0]
    assert images.dtype == np.float32 and images.shape == (16, 16, 16, 3)
    assert labels.dtype == np.int32
    epochs = [np.concatenate([image_ids(batches[4 * e + i]) for i in range(4)]) for e in range(3)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(50))
    assert not np.array_equal(epochs[0], epochs[1])
    again = data.training_dataset(16, augment=False, seed=3, epochs=3)
    np.testing.assert_array_equal(image_ids(again[5]), image_ids(batches[5]))
    other = data.training_dataset(16, augment=False, seed=4, epochs=1)
    assert not np.array_equal(np.concatenate([image_ids(other[i]) for i in range(4)]), epochs[0])
    ordered = data.training_dataset(16, augment=False, shuffle=False, epochs=1)
    np.testing.assert_array_equal(image_ids(ordered[3]), np.arange(48, 50))


def test_training_batches_resume_on_the_same_batches(without_tensorflow):
    data = numbered_images()
    full = data.training_dataset(16, seed=5, epochs=4, steps_per_epoch=3)
    resumed = data.training_dataset(16, seed=5, epochs=4, initial_epoch=2, steps_per_epoch=3)
    assert (full.num_batches, resumed.num_batches) == (12, 6)
    for index in range(6):
        np.testing.assert_array_equal(resumed[index][0], full[6 + index][0])
        np.testing.assert_array_equal(resumed[index][1], full[6 + index][1])
    # Augmentation changes the images, not the order.
    plain = data.training_dataset(16, augment=False, seed=5, epochs=4, steps_per_epoch=3)
    np.testing.assert_array_equal(full[7][1], plain[7][1])
    assert not np.array_equal(full[7][0], plain[7][0])
    dropped = data.training_dataset(16, augment=False, drop_remainder=True, epochs=1)
    assert [len(dropped[i][0]) for i in range(dropped.num_batches)] == [16, 16, 16]
    endless = data.training_dataset(16, augment=False, seed=1, epochs=None)
    assert endless.num_batches is None
    two_epochs = data.training_dataset(16, augment=False, seed=1, epochs=2)
    np.testing.assert_array_equal(image_ids(endless[4]), image_ids(two_epochs[4]))


def test_keras_fit_reads_every_batch_in_order(without_tensorflow):
    class Recorded(TrainingBatches):
        def __getitem__(self, index):
            self.read.append(index)
            return super().__getitem__(index)

    data = numbered_images()
    batches = data.training_dataset(16, seed=0, epochs=3, steps_per_epoch=2)
    batches.__class__ = Recorded
    batches.read = []
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(batches, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    # After Keras' peek at the first batches (for their shapes), each epoch
    # goes on where the last stopped: one pass over the batches, in order.
    assert batches.read[-6:] == [0, 1, 2, 3, 4, 5]


def test_evaluation_batches_keep_the_order(without_tensorflow):
    data = numbered_images(20)
    batches = data.evaluation_dataset(8)
    assert isinstance(batches, EvaluationBatches) and batches.num_batches == 3
    np.testing.assert_array_equal(
        np.concatenate([image_ids(batches[i]) for i in range(3)]), np.arange(20)
    )
    images_only = data.evaluation_dataset(8, with_labels=False)
    assert images_only[2].shape == (4, 16, 16, 3) and images_only[2].dtype == np.float32
    unlabelled = load_images(data.images)
    assert unlabelled.evaluation_dataset(8)[0].shape == (8, 16, 16, 3)


def test_prediction_batches_have_one_size(without_tensorflow):
    data = numbered_images(20)
    batches = data.prediction_batches(8)  # 3 batches of 7, the last padded
    assert isinstance(batches, EvaluationBatches) and batches.num_batches == 3
    assert [batches[i].shape for i in range(3)] == [(7, 16, 16, 3)] * 3
    ids = np.concatenate([batches[i][:, 0, 0, 0] for i in range(3)])
    np.testing.assert_array_equal(ids, [*range(20), 0])  # the padding image is black
    assert not batches[2][6].any()
    with pytest.raises(ValueError, match="Only batches of images without labels"):
        EvaluationBatches(data.images, data.labels, 8, pad=True)


def test_transform_array_matches_a_hand_computation():
    augmentation = CIFARAugmentation((32, 32, 3), padding=4, cutout_size=16)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    offsets = np.array([[0, 0], [8, 8], [4, 4], [1, 7], [6, 2]])
    flips = np.array([False, True, False, True, False])
    centers = np.array([[8, 8], [24, 24], [16, 11], [2, 30], [31, 0]])  # the last two clipped
    augmented = augmentation.transform_array(images, offsets, flips, centers)
    for i, image in enumerate(images):
        padded = np.full((40, 40, 3), 127.5, "float32")  # mid-grey padding
        padded[4:36, 4:36] = image
        (dy, dx), (row, col) = offsets[i], centers[i]
        expected = padded[dy : dy + 32, dx : dx + 32]
        if flips[i]:
            expected = expected[:, ::-1]
        expected = expected.copy()
        expected[max(row - 8, 0) : row + 8, max(col - 8, 0) : col + 8] = 127.5
        np.testing.assert_array_equal(augmented[i], expected)


def test_augment_array_draws_every_offset_and_both_flips():
    augmentation = CIFARAugmentation((32, 32, 3))
    image = np.full((32, 32, 3), 100.0, "float32")
    image[:, :16] = 200.0  # left half brighter: a flip shows
    batch = augmentation.augment_array(np.stack([image] * 512), np.random.default_rng(7))
    np.testing.assert_array_equal(
        batch, augmentation.augment_array(np.stack([image] * 512), np.random.default_rng(7))
    )
    assert augmentation.augment_array(image, np.random.default_rng(7)).shape == (32, 32, 3)
    real = (batch == 100.0) | (batch == 200.0)
    assert np.all(np.count_nonzero(batch == 127.5, axis=(1, 2, 3)) > 0)  # each has a cutout
    row_offsets, col_offsets, flipped = set(), set(), 0
    for pixels, is_real in zip(batch, real, strict=True):
        rows = np.flatnonzero(is_real.any(axis=(1, 2)))
        cols = np.flatnonzero(is_real.any(axis=(0, 2)))
        # A crop at offset d (of 0..8) keeps 4 - d grey rows above, d - 4 below.
        row_offsets.add(4 - rows[0] if rows[0] else 4 + (31 - rows[-1]))
        col_offsets.add(4 - cols[0] if cols[0] else 4 + (31 - cols[-1]))
        middle_row = pixels[rows[len(rows) // 2]]
        flipped += middle_row[cols[0], 0] == 100.0 or middle_row[cols[-1], 0] == 200.0
    assert row_offsets == set(range(9)) and col_offsets == set(range(9))
    assert 0.4 < flipped / 512 < 0.6


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
@pytest.mark.slow
def test_search_predict_and_save_on_jax_without_tensorflow(cifar10_path, tmp_path):
    """A fresh process on JAX whose `import tensorflow` fails, as on a JAX or
    PyTorch install without TensorFlow: load, fit, predict, save and load."""
    script = textwrap.dedent(
        f"""
        import json, sys

        class NoTensorFlow:
            def find_spec(self, name, path=None, target=None):
                if name == "tensorflow" or name.startswith("tensorflow."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NoTensorFlow())
        import numpy as np
        from keras_adanas import AdaNASClassifier, load_images

        data = load_images({cifar10_path!r})
        x, y = data.images[:64], data.labels[:64]
        classifier = AdaNASClassifier(
            architecture="1@24", max_iterations=1, epochs_per_iteration=2,
            batch_size=32, seed=0, verbose=0,
        ).fit(x, y)
        probabilities = classifier.predict_proba(x[:16])
        classifier.save({str(tmp_path / "model.keras")!r})
        loaded = AdaNASClassifier.load({str(tmp_path / "model.keras")!r})
        reloaded = loaded.predict_proba(x[:16])
        try:
            classifier.export({str(tmp_path / "saved_model")!r})
            export_error = None
        except ImportError as error:
            export_error = str(error)
        import contextlib, io
        from keras_adanas.cli import main

        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            cli_code = main(
                ["export", {str(tmp_path / "model.keras")!r}, {str(tmp_path / "cli")!r}]
            )
        print(json.dumps({{
            "cli_code": cli_code,
            "cli_error": stderr.getvalue(),
            "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
            "pipeline": type(data.training_dataset(32)).__name__,
            "members": len(classifier.ensemble_.members),
            "steps": classifier.history_[0]["steps"],
            "sums": probabilities.sum(axis=1).tolist(),
            "max_load_difference": float(np.abs(reloaded - probabilities).max()),
            "export_error": export_error,
        }}))
        """
    )
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": REPO}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["tensorflow_loaded"] is False
    assert result["pipeline"] == "TrainingBatches"
    assert result["members"] == 1 and result["steps"] == 4  # 2 epochs of 2 batches
    np.testing.assert_allclose(result["sums"], 1.0, atol=1e-5)
    assert result["max_load_difference"] == 0.0
    assert "needs TensorFlow" in result["export_error"]
    assert not os.path.exists(tmp_path / "saved_model")
    assert result["cli_code"] == 2
    assert result["cli_error"].startswith("keras-adanas export: error: Exporting a SavedModel")
    assert not os.path.exists(tmp_path / "cli")
