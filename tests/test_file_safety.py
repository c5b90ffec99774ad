"""File safety: a command deletes only the files a search wrote, never runs
two searches in one directory, writes files others can read, and reports a
full disk instead of crashing or leaving a torn file."""

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_adanas.search.loop as loop_module
from keras_adanas import AdaNASClassifier, Ensemble, MixtureWeights, NASNetA
from keras_adanas.backup import IterationBackup, weights_digest
from keras_adanas.io_utils import (
    save_arrays_atomically,
    save_model_atomically,
    write_directory_atomically,
    write_json_atomically,
)
from keras_adanas.project import ProjectDirectory, ProjectInUseError
from keras_adanas.search import SearchState

# The files a search writes, relative to its project directory.
SEARCH_FILES = [
    "search.json",
    "ensemble.keras",
    "iteration_001/member.keras",
    "iteration_001/report.json",
    "iteration_002/report.json",
    "backup/backup.json",
    "backup/epoch_0002.state.npz",
    "logs/iteration_001/train/events.out.tfevents.1.host",
    "logs/iteration_001/validation/events.out.tfevents.2.host",
    "plots/architectures.png",
    "plots/errors.png",
    ".ensemble.keras.adanas-a1b2c3.tmp.keras",
    "iteration_002/.member.keras.adanas-x.tmp.keras",
    "backup/.backup.json.adanas-y.tmp",
    ".worker-worker-1/search.json",
    ".worker-worker-1/iteration_001/report.json",
]
# The user's files beside them, some in the search's own folders.
USER_FILES = [
    "notes.txt",
    ".notes.txt.tmp",
    ".ensemble.keras.abc.tmp.keras",
    "logs/mine.txt",
    "logs/iteration_001/train/profile.txt",
    "plots/my_plot.png",
    "backup/notes.txt",
    "iteration_003/data.csv",
    "iteration_001/extra.txt",
    ".worker-worker-2/own.txt",
    "iteration_1/kept.txt",
]


def write_files(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def files_under(root):
    return sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names
    )


def folders_under(root):
    return sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, names, _ in os.walk(root)
        for name in names
    )


@pytest.fixture
def populated(tmp_path):
    """A project directory holding a search's files and the user's."""
    project = tmp_path / "project"
    write_files(project, SEARCH_FILES + USER_FILES)
    return project


def test_clear_removes_exactly_the_files_a_search_wrote(populated):
    ProjectDirectory(populated).clear()
    assert files_under(populated) == sorted(USER_FILES)
    for name in USER_FILES:
        assert (populated / name).read_text() == name
    # Emptied folders go; a folder that still holds the user's files stays.
    assert folders_under(populated) == [
        ".worker-worker-2",
        "backup",
        "iteration_001",
        "iteration_003",
        "iteration_1",
        "logs",
        "logs/iteration_001",
        "logs/iteration_001/train",
        "plots",
    ]


def test_temporary_files_removed_at_start_are_the_searchs_own(populated):
    ProjectDirectory(populated).remove_temporary_files()
    temporary = [name for name in SEARCH_FILES if ".adanas-" in name]
    assert files_under(populated) == sorted(set(SEARCH_FILES + USER_FILES) - set(temporary))


class TrainingStarted(Exception):
    """Raised in place of training: what was deleted by then is the point."""


@pytest.fixture
def no_training(monkeypatch):
    def stop(*args, **kwargs):
        raise TrainingStarted()

    monkeypatch.setattr(loop_module, "train_candidates", stop)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) % 2


def test_overwrite_removes_only_search_files(populated, images, no_training):
    (populated / "search.json").write_text("{}")  # another search's record
    clf = AdaNASClassifier(architecture="1@24", directory=str(populated), overwrite=True)
    with pytest.raises(TrainingStarted):
        clf.fit(*images)
    assert files_under(populated) == sorted(USER_FILES + ["search.json"])


@pytest.mark.parametrize("directory", ["", "  ", "\t"])
def test_a_blank_directory_is_refused_before_anything(directory, tmp_path, monkeypatch, images):
    """An unset `$RUN_DIR` must not clear the current folder."""
    from keras_adanas.cli import main

    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, SEARCH_FILES)
    before = files_under(tmp_path)
    clf = AdaNASClassifier(architecture="1@24", directory=directory, overwrite=True)
    with pytest.raises(ValueError, match="empty or blank path.*Received: directory="):
        clf.fit(*images)
    np.savez(tmp_path / "data.npz", x_train=images[0], y_train=images[1])
    assert main(["fit", "data.npz", "--directory", directory, "--overwrite"]) == 2
    assert files_under(tmp_path) == sorted(before + ["data.npz"])


def untrained_classifier(**params):
    member = NASNetA("1@24", 2, seed=0).without_auxiliary_head(name="member_1")
    ensemble = Ensemble([member], MixtureWeights("uniform", 1), classes=[0, 1])
    classifier = AdaNASClassifier(architecture="1@24", **params)
    classifier._set_fitted(SearchState.of_ensemble(ensemble, [], []))
    return classifier


def test_load_forgets_runtime_options_and_a_warm_start_clears_nothing(
    populated, images, tmp_path, no_training
):
    saved = tmp_path / "copy.keras"
    untrained_classifier(
        directory=str(populated), overwrite=True, verbose=2, tensorboard=True
    ).save(saved)
    loaded = AdaNASClassifier.load(saved)
    defaults = AdaNASClassifier().get_params()
    for name in ("directory", "overwrite", "verbose", "tensorboard", "strategy", "warm_start"):
        assert getattr(loaded, name) == defaults[name], name

    # Even told the directory and overwrite again, a warm start clears nothing.
    before = files_under(populated)
    loaded.set_params(warm_start=True, directory=str(populated), overwrite=True)
    with pytest.raises((TrainingStarted, ValueError)):
        loaded.fit(*images)
    assert set(before) - set(files_under(populated)) <= {
        name for name in SEARCH_FILES if ".adanas-" in name
    }


def test_a_second_search_in_a_locked_directory_is_refused(tmp_path, images, no_training):
    project = tmp_path / "project"
    project.mkdir()
    holder = ProjectDirectory(project)
    with holder.lock():
        clf = AdaNASClassifier(architecture="1@24", directory=str(project), verbose=0)
        with pytest.raises(ProjectInUseError, match="Another process is running a search"):
            clf.fit(*images)
        assert os.listdir(project) == []
    # Released: the next search goes ahead (and stops where training starts).
    with pytest.raises(TrainingStarted):
        clf.fit(*images)
    assert os.listdir(project) == ["search.json"]


def test_the_lock_of_a_killed_process_is_released(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    holder = textwrap.dedent(
        f"""
        import sys, time
        from keras_adanas.project import ProjectDirectory
        with ProjectDirectory({str(project)!r}).lock():
            print("locked", flush=True)
            time.sleep(600)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(ProjectInUseError), ProjectDirectory(project).lock():
            pass
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with ProjectDirectory(project).lock():
        pass  # no stale lock, no file left
    assert os.listdir(project) == []


def test_a_backup_names_the_ensemble_it_trains_against():
    member = NASNetA("1@24", 2, seed=0).without_auxiliary_head(name="member_1")
    mixture = MixtureWeights("scalar", 2, 2)
    before = weights_digest([member, mixture])
    assert weights_digest([member, mixture]) == before
    mixture.weight.assign([0.7, 0.3])
    assert weights_digest([member, mixture]) != before


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(umask, tmp_path):
    model = NASNetA("1@24", 2, seed=0, include_auxiliary_head=False)
    previous = os.umask(umask)
    try:
        write_json_atomically({"a": 1}, tmp_path / "record.json")
        save_model_atomically(model, tmp_path / "model.keras")
        save_arrays_atomically(tmp_path / "arrays.npz", x=np.zeros(3))
        write_directory_atomically(
            lambda folder: open(os.path.join(folder, "file"), "w").close(), tmp_path / "folder"
        )
    finally:
        os.umask(previous)
    for name in ("record.json", "model.keras", "arrays.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE(os.stat(tmp_path / "folder").st_mode) == 0o777 & ~umask


def test_a_backup_that_cannot_be_written_is_an_oserror_not_a_crash(tmp_path):
    """A full disk (here: a file size limit, which fails writes as a full disk
    does) while backing up an epoch. Keras' HDF5 writer would crash the
    process (segmentation fault) or leave a truncated file; the backup
    raises an `OSError`, and what was backed up before stays whole."""
    script = textwrap.dedent(
        f"""
        import os, resource, signal
        import keras
        from keras_adanas import NASNetA
        from keras_adanas.backup import IterationBackup
        model = NASNetA("1@24", 2, seed=0, include_auxiliary_head=False)
        model.compile(optimizer=keras.optimizers.SGD(momentum=0.9))
        model.optimizer.build(model.trainable_variables)
        backup = IterationBackup({str(tmp_path / "backup")!r}, {{"iteration": 1}})
        backup.set_model(model)
        backup.on_epoch_end(0)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        try:
            backup.on_epoch_end(1)
        except OSError as error:
            print("OSError", error.errno)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("OSError")
    assert sorted(os.listdir(tmp_path / "backup")) == ["backup.json", "epoch_0001.state.npz"]
    model = NASNetA("1@24", 2, seed=1, include_auxiliary_head=False)
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9))
    assert IterationBackup(tmp_path / "backup", {"iteration": 1}).restore(model) == 1
    expected = NASNetA("1@24", 2, seed=0, include_auxiliary_head=False)
    np.testing.assert_array_equal(model.variables[0].numpy(), expected.variables[0].numpy())


def test_the_command_line_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    from keras_adanas.cli import main

    path = str(tmp_path / "p" / "backup" / "epoch_0001.state.npz")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(AdaNASClassifier, "fit", full)
    assert main(["fit", "digits", "--directory", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert error == (
        f"keras-adanas fit: error: the disk is full (No space left on device): {path!r}\n"
    )
