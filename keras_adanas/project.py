"""The project directory of a search: what it has finished, and how to go on.

Layout:

    search.json              the search's arguments and a fingerprint of its data,
                             written before the first iteration trains
    iteration_NNN/
        member.keras         the member iteration NNN chose (absent if it was skipped)
        report.json          the iteration's report
    ensemble.keras           the ensemble after the last finished iteration
    backup/                  epoch backups of the iteration in progress
    logs/iteration_NNN/      TensorBoard logs, when asked for
    plots/                   the `report` plots, when drawn
    .worker-<type>-<id>/     a non-chief worker's own project (multi-worker runs)

Every file is written atomically (temporary name, then rename), and
`ensemble.keras` is written last: a search killed at any moment resumes from
the last iteration whose ensemble landed, and the iteration in progress from
its last epoch backup. Temporary files a killed process left behind are
removed when the next search starts.
"""

import glob
import hashlib
import os
import shutil

import numpy as np

from keras_adanas.io_utils import read_json, save_model_atomically, write_json_atomically

SEARCH_FILE = "search.json"
ENSEMBLE_FILE = "ensemble.keras"
BACKUP_FOLDER = "backup"
MEMBER_FILE = "member.keras"
REPORT_FILE = "report.json"
LOGS_FOLDER = "logs"
PLOTS_FOLDER = "plots"


def iteration_folder(iteration):
    return f"iteration_{int(iteration):03d}"


def data_fingerprint(data):
    """A JSON-serializable identity of `LabeledImages`: size, shape, classes, digest."""
    digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    if data.labels is not None:
        digest.update(np.ascontiguousarray(data.labels).tobytes())
    return {
        "examples": len(data),
        "image_shape": list(data.image_shape),
        "classes": [c.item() if isinstance(c, np.generic) else c for c in data.classes],
        "sha256": digest.hexdigest(),
    }


class ProjectDirectory:
    """Reads and writes a search's project directory (see the module docstring).

    Args:
        path: str or path-like, the directory (created on the first write).
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def backup_dir(self):
        return self.file(BACKUP_FOLDER)

    def tensorboard_dir(self, iteration):
        return self.file(LOGS_FOLDER, iteration_folder(iteration))

    @property
    def plots_dir(self):
        return self.file(PLOTS_FOLDER)

    @property
    def ensemble_path(self):
        return self.file(ENSEMBLE_FILE)

    def recorded_search(self):
        """The `search.json` record (`params`, `data`), or None."""
        path = self.file(SEARCH_FILE)
        if not os.path.exists(path):
            return None
        try:
            record = read_json(path)
        except ValueError as error:
            raise ValueError(
                f"{error}. The directory {self.path!r} holds a damaged search record: "
                "pass `overwrite=True` to start anew there, or use another directory."
            ) from None
        if not isinstance(record, dict) or not {"params", "data"} <= set(record):
            raise ValueError(
                f"{path!r} is not a keras_adanas search record. Pass `overwrite=True` "
                "to start anew there, or use another directory."
            )
        return record

    def has_ensemble(self):
        return os.path.exists(self.ensemble_path)

    def clear(self):
        """Removes everything a search writes here, and nothing else."""
        for name in (SEARCH_FILE, ENSEMBLE_FILE):
            if os.path.exists(self.file(name)):
                os.remove(self.file(name))
        folders = [self.backup_dir, self.file(LOGS_FOLDER), self.plots_dir]
        folders += glob.glob(self.file("iteration_[0-9][0-9][0-9]"))
        folders += glob.glob(self.file(".worker-*"))
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.remove_temporary_files()

    def remove_temporary_files(self):
        """Removes temporary files a killed write left behind."""
        for pattern in (".*.tmp*", os.path.join("iteration_*", ".*.tmp*")):
            for path in glob.glob(self.file(pattern)):
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)

    def record_search(self, params, data):
        """Writes `search.json`: the arguments and the data fingerprints."""
        os.makedirs(self.path, exist_ok=True)
        write_json_atomically({"params": params, "data": data}, self.file(SEARCH_FILE))

    def write_iteration(self, report, ensemble, member=None):
        """Writes a finished iteration: its member and report, then the ensemble.

        Args:
            report: the iteration's JSON report.
            ensemble: the ensemble after the iteration, or None (no member yet).
            member: the chosen member, or None when the iteration was skipped.
        """
        folder = self.file(iteration_folder(report["iteration"]))
        os.makedirs(folder, exist_ok=True)
        if member is not None:
            save_model_atomically(member, os.path.join(folder, MEMBER_FILE))
        write_json_atomically(report, os.path.join(folder, REPORT_FILE))
        if ensemble is not None:
            save_model_atomically(ensemble, self.ensemble_path)
        shutil.rmtree(self.backup_dir, ignore_errors=True)
