"""Epoch backups of an iteration's training, so a killed search resumes mid-iteration."""

import fnmatch
import hashlib
import os

import keras
import numpy as np

from keras_adanas.io_utils import (
    existing_files,
    matching_paths,
    read_json,
    remove_if_empty,
    remove_path,
    save_arrays_atomically,
    temporary_paths,
    write_json_atomically,
)

BACKUP_FILE = "backup.json"
WEIGHTS_PATTERN = "epoch_[0-9][0-9][0-9][0-9].state.npz"
_RECORD_KEYS = {"signature", "epoch", "weights", "epoch_logs"}


def weights_digest(layers):
    """A SHA-256 digest of the shapes and values of every variable of
    `layers` (models or layers), in order: two trainings against different
    teachers get different backup signatures. Variable paths are left out:
    Keras numbers some of them by creation order in the process (a seed
    generator's, say), so a teacher loaded by a resumed search has other
    paths than the same teacher trained in the interrupted one.

    Example:

    >>> signature = {"iteration": 2, "teacher": weights_digest(members)}
    """
    digest = hashlib.sha256()
    for layer in layers:
        for variable in layer.variables:
            digest.update(f"{tuple(variable.shape)}{variable.dtype}".encode())
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


class IterationBackup(keras.callbacks.Callback):
    """Backs up a training model after every epoch, crash-safely.

    After each epoch it writes the model's weights (optimizer state, batch
    norm statistics and drop-path state included) to a new file under a
    temporary name and renames it, then atomically replaces `backup.json`,
    which names that file and holds the epoch, the logs of every epoch so far
    and the training's `signature`; only then is the previous weights file
    removed. Whenever the process dies, `backup.json` names a complete
    weights file of the epoch it states.

    This stands in for `keras.callbacks.BackupAndRestore`, which writes its
    weights file and then its epoch file, each in place: a kill while writing
    leaves a torn file, or the weights of one epoch beside the number of
    another.

    The state file, `epoch_NNNN.state.npz`, holds the value of every
    variable of the model and of its optimizer, in their order (seed
    generators' states included), written by NumPy. (Keras' `save_weights`
    writes HDF5, whose writer reports no full disk: it returns after a
    truncated write, or the process dies of a segmentation fault. NumPy's
    writer raises an `OSError`.)

    It deletes only the files it wrote (`backup.json` and the state files),
    and the folder when nothing else is left.

    Args:
        backup_dir: the folder of the backup.
        signature: a JSON-serializable dict that identifies the training
            (iteration, candidates, batch size, ...). `restore` ignores a
            backup of another training.
        progress: None, or a callable returning a record (with `to_json`)
            of how far the training has come beyond its epochs (a
            time-limited iteration's steps and seconds), written with each
            epoch's backup; settable once training starts.
        progress_type: the class of those records, whose `from_json` raises
            `ValueError` on a record it cannot read; with it, a backup
            without a readable record is ignored, and `restore` sets
            `restored_progress`.

    Example:

    >>> backup = IterationBackup("runs/backup", {"iteration": 2})
    >>> initial_epoch = backup.restore(model)  # 0 when there is no backup
    >>> model.fit(data, epochs=8, initial_epoch=initial_epoch, callbacks=[backup])
    """

    def __init__(self, backup_dir, signature, progress=None, progress_type=None):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.signature = signature
        self.progress = progress
        self.progress_type = progress_type
        self.restored_progress = None
        self.epoch_logs = []

    @property
    def _record_path(self):
        return os.path.join(self.backup_dir, BACKUP_FILE)

    def read(self):
        """The backup's record, or None when there is none for this training."""
        if not os.path.exists(self._record_path):
            return None
        try:
            record = read_json(self._record_path)
        except ValueError:
            return None  # Never half-written (atomic), but not ours to trust.
        if (
            not isinstance(record, dict)
            or not _RECORD_KEYS <= set(record)
            or record["signature"] != self.signature
            or not isinstance(record["weights"], str)
            # A file name of ours in this folder, never a path elsewhere.
            or not fnmatch.fnmatchcase(record["weights"], WEIGHTS_PATTERN)
            or not isinstance(record["epoch_logs"], list)
            or isinstance(record["epoch"], bool)
            or not isinstance(record["epoch"], int)
            or record["epoch"] < 1
        ):
            return None
        if self.progress_type is not None:
            try:
                self.progress_type.from_json(record.get("progress"))
            except ValueError:
                return None
        return record

    def restore(self, model):
        """Loads the last backup into `model`, whose optimizer is compiled.

        A backup of another training (another signature) is deleted.

        Returns:
            The number of epochs the backup has finished (0 without one).
        """
        record = self.read()
        self.restored_progress = None
        if record is None:
            self.delete()
            self.epoch_logs = []
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        _load_state(model, os.path.join(self.backup_dir, record["weights"]))
        self.epoch_logs = list(record["epoch_logs"])
        if self.progress_type is not None:
            self.restored_progress = self.progress_type.from_json(record["progress"])
        return int(record["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs.append({k: float(v) for k, v in (logs or {}).items()})
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"epoch_{epoch + 1:04d}.state.npz"
        values = {
            f"{index:06d}": keras.ops.convert_to_numpy(variable)
            for index, variable in enumerate(_state_variables(self.model))
        }
        save_arrays_atomically(os.path.join(self.backup_dir, weights), **values)
        record = {
            "signature": self.signature,
            "epoch": epoch + 1,
            "weights": weights,
            "epoch_logs": self.epoch_logs,
        }
        if self.progress is not None:
            record["progress"] = self.progress().to_json()
        write_json_atomically(record, self._record_path)
        for old in os.listdir(self.backup_dir):
            if old != weights and fnmatch.fnmatchcase(old, WEIGHTS_PATTERN):
                os.remove(os.path.join(self.backup_dir, old))

    def delete(self):
        """Removes the backup's files (and its folder, if nothing else is left)."""
        remove_backup_files(self.backup_dir)


def _state_variables(model):
    """Every variable a training's state is: the model's, then its optimizer's."""
    return [*model.variables, *model.optimizer.variables]


def _load_state(model, path):
    """Assigns the values `IterationBackup` saved in `path` to `model`."""
    variables = _state_variables(model)
    with np.load(path, allow_pickle=False) as archive:
        values = [archive[f"{index:06d}"] for index in range(len(archive.files))]
    shapes = [tuple(v.shape) for v in variables]
    if [value.shape for value in values] != shapes:
        raise ValueError(
            f"The backup {path!r} holds the state of another model: "
            f"{len(values)} variables where the training has {len(variables)}, or "
            "other shapes. Remove the backup folder, or use the arguments it was "
            "written with."
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def backup_files(folder):
    """The files an `IterationBackup` wrote in `folder`, temporary ones included."""
    weights = [p for p in matching_paths(folder, WEIGHTS_PATTERN) if os.path.isfile(p)]
    return existing_files(folder, BACKUP_FILE) + weights + temporary_paths(folder)


def remove_backup_files(folder):
    """Removes what an `IterationBackup` wrote in `folder`, then the folder if
    nothing else is left in it."""
    for path in backup_files(folder):
        remove_path(path)
    remove_if_empty(folder)
