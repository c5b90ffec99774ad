"""Atomic writes: each file reaches the disk before it is renamed into place,
the rename reaches it before the writer returns, and a failed write leaves the
destination as it was."""

import os

import keras
import numpy as np
import pytest

from keras_adanas import io_utils


@pytest.fixture
def flushed(monkeypatch):
    """The inodes `os.fsync` was called on (a rename keeps the inode)."""
    inodes = set()
    fsync = os.fsync

    def recording_fsync(fd):
        inodes.add(os.fstat(fd).st_ino)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return inodes


def small_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_each_file_is_flushed_before_its_rename_and_each_folder_after(flushed, tmp_path):
    model = small_model()
    io_utils.write_json_atomically({"a": 1}, tmp_path / "record.json")
    io_utils.save_arrays_atomically(tmp_path / "arrays.npz", x=np.arange(3))
    io_utils.save_model_atomically(model, tmp_path / "model.keras")

    def write_folder(folder):
        os.makedirs(os.path.join(folder, "variables"))
        for name in ("saved_model.pb", os.path.join("variables", "data")):
            with open(os.path.join(folder, name), "wb") as file:
                file.write(b"bytes")

    io_utils.write_directory_atomically(write_folder, tmp_path / "saved_model")
    files = ["record.json", "arrays.npz", "model.keras"]
    files += ["saved_model/saved_model.pb", "saved_model/variables/data"]
    assert {(tmp_path / name).stat().st_ino for name in files} <= flushed
    folders = [tmp_path, tmp_path / "saved_model", tmp_path / "saved_model" / "variables"]
    if os.name != "nt":
        assert {folder.stat().st_ino for folder in folders} <= flushed
    assert sorted(os.listdir(tmp_path)) == [
        "arrays.npz",
        "model.keras",
        "record.json",
        "saved_model",
    ]
    assert io_utils.read_json(tmp_path / "record.json") == {"a": 1}


def test_a_failed_write_leaves_the_destination_as_it_was(tmp_path):
    io_utils.write_json_atomically({"version": 1}, tmp_path / "record.json")
    with pytest.raises(TypeError):
        io_utils.write_json_atomically({"version": object()}, tmp_path / "record.json")
    assert io_utils.read_json(tmp_path / "record.json") == {"version": 1}

    def fail(folder):
        with open(os.path.join(folder, "saved_model.pb"), "wb") as file:
            file.write(b"half")
        raise RuntimeError("the writer failed")

    io_utils.write_directory_atomically(lambda folder: None, tmp_path / "saved_model")
    with pytest.raises(RuntimeError, match="the writer failed"):
        io_utils.write_directory_atomically(fail, tmp_path / "saved_model")
    assert sorted(os.listdir(tmp_path)) == ["record.json", "saved_model"]
    assert not os.listdir(tmp_path / "saved_model")
