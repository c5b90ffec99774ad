"""Reliability: resume after SIGKILL, diverging candidates, out of memory,
determinism. (The bad-input catalogue is tests/test_bad_input.py.)"""

import glob
import json
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from keras_adanas import AdaNASClassifier, load_images
from keras_adanas.io_utils import read_json
from keras_adanas.project import ProjectDirectory
from keras_adanas.search import IterationConfig, build_candidates, run_iteration

SCRIPT = os.path.join(os.path.dirname(__file__), "resumable_search.py")


@pytest.fixture(scope="module")
def run_search(cifar10_path):
    """Runs tests/resumable_search.py; returns (exit code, its output)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(directory, kill_point, output):
        process = subprocess.run(
            [sys.executable, SCRIPT, str(directory), kill_point, str(output)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        return process.returncode, process.stdout + process.stderr

    return run


def finished(output):
    with np.load(output) as result:
        return {
            "probabilities": result["probabilities"],
            "members": json.loads(str(result["members"])),
            "history": json.loads(str(result["history"])),
        }


def assert_same_members(ours, theirs):
    """Same architectures, sizes and iterations; mixture weights within float
    noise (TF's CPU kernels are not bitwise repeatable across processes)."""
    key = ("iteration", "architecture", "params")
    assert [[m[k] for k in key] for m in ours] == [[m[k] for k in key] for m in theirs]
    np.testing.assert_allclose(
        [m["weight"] for m in ours], [m["weight"] for m in theirs], rtol=1e-5, atol=1e-7
    )


@pytest.fixture(scope="module")
def uninterrupted(run_search, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    code, log = run_search(folder / "project", "none", folder / "result.npz")
    assert code == 0, log
    return finished(folder / "result.npz")


def modified_times(directory):
    return {
        path: os.stat(path).st_mtime_ns
        for path in glob.glob(os.path.join(directory, "iteration_001", "*"))
    }


@pytest.mark.slow
def test_a_search_killed_anywhere_resumes_to_the_uninterrupted_result(
    run_search, uninterrupted, tmp_path
):
    """Killed in training, then while saving, the search resumes each time
    and ends as the uninterrupted one. Its iteration 1 was trained from the
    seed in another process than the uninterrupted run's, so this also pins
    that two seeded runs give the same ensemble."""
    project = tmp_path / "project"
    output = tmp_path / "result.npz"

    # Killed in iteration 2's second epoch: iteration 1 and epoch 1 are safe.
    code, log = run_search(project, "training", output)
    assert code == -signal.SIGKILL, log
    assert sorted(os.listdir(project)) == [
        "backup",
        "ensemble.keras",
        "iteration_001",
        "search.json",
    ]
    assert read_json(project / "backup" / "backup.json")["epoch"] == 1
    iteration_1 = modified_times(project)

    # Killed halfway through writing the 2-member ensemble: training resumed
    # after epoch 1 and finished, the selection ran, the write was torn.
    code, log = run_search(project, "saving", output)
    assert code == -signal.SIGKILL, log
    assert "Resuming the search" in log and "after iteration 1" in log
    assert "Iteration 2: restored the backup after epoch 1/2" in log
    assert "Iteration 1/2" not in log  # finished members are not retrained
    assert read_json(project / "backup" / "backup.json")["epoch"] == 2
    assert glob.glob(str(project / ".ensemble.keras.*.tmp.keras"))  # the torn file
    assert len(AdaNASClassifier.load(project).members_) == 1  # never read

    # The trained epochs are not trained again: the backup after epoch 2
    # goes straight to the selection.
    code, log = run_search(project, "none", output)
    assert code == 0, log
    assert "restored the backup after epoch 2/2" in log and "Iteration 1/2" not in log
    assert modified_times(project) == iteration_1
    assert sorted(os.listdir(project)) == [
        "ensemble.keras",
        "iteration_001",
        "iteration_002",
        "search.json",
    ]
    resumed = finished(output)
    assert_same_members(resumed["members"], uninterrupted["members"])
    for ours, theirs in zip(resumed["history"], uninterrupted["history"], strict=True):
        assert ours["chosen"] == theirs["chosen"]
        assert [c["selection_loss"] for c in ours["candidates"]] == pytest.approx(
            [c["selection_loss"] for c in theirs["candidates"]], rel=1e-5, abs=1e-6
        )
    np.testing.assert_allclose(
        resumed["probabilities"], uninterrupted["probabilities"], rtol=1e-5, atol=1e-6
    )
    assert (resumed["probabilities"].argmax(1) == uninterrupted["probabilities"].argmax(1)).all()


@pytest.fixture(scope="module")
def small_cifar(cifar10_path):
    data = load_images(cifar10_path)
    return load_images(data.images[:64], data.labels[:64], classes=data.classes)


def poison(candidate):
    """Makes a candidate's logits NaN, as a diverged candidate's are."""
    kernel = candidate.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_a_diverging_candidate_is_dropped_and_the_others_selected(small_cifar):
    candidates = build_candidates(["1@24", "1@24"], 10, (32, 32, 3), iteration=1, seed=0)
    poison(candidates[0])
    config = IterationConfig(epochs=None, steps=2, batch_size=16, seed=0)
    with pytest.warns(UserWarning, match=r"Candidate 0 \(1@24\) of iteration 1 diverged"):
        result = run_iteration(1, candidates, small_cifar, small_cifar, config)
    assert result.chosen == 1
    assert [c.diverged for c in result.candidates] == [True, False]
    assert result.candidates[0].selection_loss is None
    assert np.isfinite(result.candidates[1].selection_loss)
    assert not np.isnan(result.member.get_layer("logits").kernel.numpy()).any()


def test_an_iteration_whose_candidates_all_diverge_is_skipped(small_cifar, tmp_path, monkeypatch):
    import keras_adanas.search.loop as loop_module

    build = loop_module.build_candidates

    def diverging_in_iteration_2(architectures, num_classes, image_shape, iteration, seed, **kw):
        candidates = build(architectures, num_classes, image_shape, iteration, seed, **kw)
        if iteration == 2:
            for candidate in candidates:
                poison(candidate)
        return candidates

    monkeypatch.setattr(loop_module, "build_candidates", diverging_in_iteration_2)
    clf = AdaNASClassifier(
        architecture="1@24",
        max_iterations=2,
        steps_per_iteration=2,
        batch_size=16,
        directory=str(tmp_path / "project"),
        seed=0,
        verbose=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(small_cifar.images, small_cifar.labels)
    messages = [str(w.message) for w in caught]
    assert any("Every candidate of iteration 2 diverged" in m for m in messages)
    assert len(clf.members_) == 1 and len(clf.history_) == 2
    assert clf.history_[1]["chosen"] is None and clf.history_[1]["architecture"] is None
    probabilities = clf.predict_proba(small_cifar.images[:8])
    assert np.isfinite(probabilities).all()
    # Saved with the skipped iteration recorded; a resume has nothing left to do.
    saved = AdaNASClassifier.load(tmp_path / "project")
    assert saved.history_ == clf.history_
    np.testing.assert_allclose(saved.predict_proba(small_cifar.images[:8]), probabilities)
    report = read_json(tmp_path / "project" / "iteration_002" / "report.json")
    assert report["chosen"] is None and all(c["diverged"] for c in report["candidates"])
    assert sorted(os.listdir(tmp_path / "project" / "iteration_002")) == ["report.json"]


class OutOfMemory(Exception):
    """Stands for tf.errors.ResourceExhaustedError (matched by its message)."""


def test_out_of_memory_retries_with_half_the_batch(small_cifar, monkeypatch):
    import keras_adanas.search.loop as loop_module

    train_candidates = loop_module.train_candidates
    tried = []

    def fails_above_batch_8(iteration, candidates, train, config, **kwargs):
        tried.append((config.batch_size, config.learning_rate))
        if config.batch_size > 8:
            raise OutOfMemory("RESOURCE_EXHAUSTED: OOM when allocating tensor")
        return train_candidates(iteration, candidates, train, config, **kwargs)

    monkeypatch.setattr(loop_module, "train_candidates", fails_above_batch_8)
    clf = AdaNASClassifier(
        architecture="1@24", max_iterations=1, steps_per_iteration=2, batch_size=32, verbose=0
    )
    with pytest.warns(UserWarning) as caught:
        clf.fit(small_cifar.images, small_cifar.labels)
    messages = [str(w.message) for w in caught if "out of memory" in str(w.message)]
    assert messages == [
        # The learning rate follows the batch: 0.2 at batch 32 (the recipe for
        # members this short).
        "Iteration 1 ran out of memory at batch size 32; retrying with batch size 16 "
        "and learning rate 0.1.",
        "Iteration 1 ran out of memory at batch size 16; retrying with batch size 8 "
        "and learning rate 0.05.",
    ]
    assert [b for b, _ in tried] == [32, 16, 8]
    assert clf.history_[0]["batch_size"] == 8 and len(clf.members_) == 1


def test_out_of_memory_halves_to_a_multiple_of_the_replicas(small_cifar, monkeypatch):
    import keras_adanas.parameters
    import keras_adanas.search.loop as loop_module

    tried = []

    class Fits(Exception):
        """Stands for the training that fits in memory (the test above runs it)."""

    def fails_above_batch_8(iteration, candidates, train, config, **kwargs):
        tried.append(config.batch_size)
        if config.batch_size > 8:
            raise OutOfMemory("RESOURCE_EXHAUSTED: OOM when allocating tensor")
        raise Fits()

    # A strategy of 4 replicas: the global batch is split 4 ways, so half of 20
    # is rounded down to 8 (a batch of 10 would not split).
    monkeypatch.setattr(loop_module, "num_replicas", lambda strategy: 4)
    monkeypatch.setattr(keras_adanas.parameters, "num_replicas", lambda strategy: 4)
    monkeypatch.setattr(loop_module, "train_candidates", fails_above_batch_8)
    clf = AdaNASClassifier(
        architecture="1@24", max_iterations=1, steps_per_iteration=2, batch_size=40, verbose=0
    )
    with pytest.warns(UserWarning) as caught, pytest.raises(Fits):
        clf.fit(small_cifar.images, small_cifar.labels)
    retries = [str(w.message).split(";")[1] for w in caught if "out of memory" in str(w.message)]
    assert retries == [
        " retrying with batch size 20 and learning rate 0.125.",
        " retrying with batch size 8 and learning rate 0.05.",
    ]
    assert tried == [40, 20, 8]


def test_out_of_memory_below_the_floor_is_a_clear_error(small_cifar, monkeypatch):
    import keras_adanas.search.loop as loop_module

    def always_out_of_memory(*args, **kwargs):
        raise OutOfMemory("RESOURCE_EXHAUSTED: OOM when allocating tensor")

    monkeypatch.setattr(loop_module, "train_candidates", always_out_of_memory)
    clf = AdaNASClassifier(architecture="1@24", batch_size=16, verbose=0)
    with pytest.warns(UserWarning, match="retrying with batch size 8"):
        with pytest.raises(MemoryError, match="at batch size 8, and retries stop at batch size 8"):
            clf.fit(small_cifar.images, small_cifar.labels)


def test_other_errors_are_not_retried(small_cifar, monkeypatch):
    import keras_adanas.search.loop as loop_module

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("a bug")

    monkeypatch.setattr(loop_module, "train_candidates", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        AdaNASClassifier(architecture="1@24", verbose=0).fit(small_cifar.images, small_cifar.labels)
    assert calls == [1]


def test_overwrite_starts_anew_and_removes_only_search_files(small_cifar, tmp_path):
    project = tmp_path / "project"
    old = AdaNASClassifier(architecture="1@48", distillation="adaptive", directory=str(project))
    ProjectDirectory(project).record_search(old._params_record(), {"train": None})
    (project / "iteration_007").mkdir()
    (project / "iteration_007" / "report.json").write_text("{}")
    (project / ".ensemble.keras.adanas-abc.tmp.keras").write_bytes(b"torn")
    (project / "notes.txt").write_text("mine")
    arguments = dict(
        architecture="1@24",
        max_iterations=1,
        steps_per_iteration=2,
        batch_size=16,
        directory=str(project),
        seed=0,
        verbose=0,
    )
    with pytest.raises(ValueError, match="other arguments"):
        AdaNASClassifier(**arguments).fit(small_cifar.images, small_cifar.labels)
    clf = AdaNASClassifier(**arguments, overwrite=True)
    clf.fit(small_cifar.images, small_cifar.labels)
    assert sorted(os.listdir(project)) == [
        "ensemble.keras",
        "iteration_001",
        "notes.txt",
        "search.json",
    ]
    assert read_json(project / "search.json")["params"]["architecture"] == "1@24"
    assert [m["architecture"] for m in clf.members_] == ["1@24"]
