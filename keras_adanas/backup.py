"""Epoch backups of an iteration's training, so a killed search resumes mid-iteration."""

import glob
import os
import shutil

import keras

from keras_adanas.io_utils import read_json, save_weights_atomically, write_json_atomically

BACKUP_FILE = "backup.json"


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

    Args:
        backup_dir: the folder of the backup; it holds nothing else.
        signature: a JSON-serializable dict that identifies the training
            (iteration, candidates, batch size, ...). `restore` ignores a
            backup of another training.

    Example:

    >>> backup = IterationBackup("runs/backup", {"iteration": 2})
    >>> initial_epoch = backup.restore(model)  # 0 when there is no backup
    >>> model.fit(data, epochs=8, initial_epoch=initial_epoch, callbacks=[backup])
    """

    def __init__(self, backup_dir, signature):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.signature = signature
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
        if record.get("signature") != self.signature:
            return None
        return record

    def restore(self, model):
        """Loads the last backup into `model`, whose optimizer is compiled.

        A backup of another training (another signature) is deleted.

        Returns:
            The number of epochs the backup has finished (0 without one).
        """
        record = self.read()
        if record is None:
            self.delete()
            self.epoch_logs = []
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.backup_dir, record["weights"]))
        self.epoch_logs = list(record["epoch_logs"])
        return int(record["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs.append({k: float(v) for k, v in (logs or {}).items()})
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"epoch_{epoch + 1:04d}.weights.h5"
        save_weights_atomically(self.model, os.path.join(self.backup_dir, weights))
        record = {
            "signature": self.signature,
            "epoch": epoch + 1,
            "weights": weights,
            "epoch_logs": self.epoch_logs,
        }
        write_json_atomically(record, self._record_path)
        for old in glob.glob(os.path.join(self.backup_dir, "epoch_*.weights.h5")):
            if os.path.basename(old) != weights:
                os.remove(old)

    def delete(self):
        """Removes the backup folder."""
        shutil.rmtree(self.backup_dir, ignore_errors=True)
