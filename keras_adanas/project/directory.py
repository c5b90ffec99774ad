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

Every file is written atomically (a temporary name holding
`io_utils.TEMPORARY_MARKER`, then a rename), and `ensemble.keras` is written
last: a search killed at any moment resumes from the last iteration whose
ensemble landed, and the iteration in progress from its last epoch backup.

The search deletes only files it wrote: the names above (and the
temporary files of its own writes), never a folder as a whole; a folder that
still holds anything else after that stays. One search at a time holds the
directory: `ProjectDirectory.lock` takes an operating-system lock on it for
the whole fit, which the system releases when the process ends, however it
ends.
"""

import contextlib
import os

from keras_adanas.backup import backup_files, remove_backup_files
from keras_adanas.io_utils import (
    existing_files,
    matching_paths,
    read_json,
    remove_if_empty,
    remove_path,
    save_model_atomically,
    temporary_paths,
    write_json_atomically,
)

SEARCH_FILE = "search.json"
ENSEMBLE_FILE = "ensemble.keras"
BACKUP_FOLDER = "backup"
MEMBER_FILE = "member.keras"
REPORT_FILE = "report.json"
LOGS_FOLDER = "logs"
PLOTS_FOLDER = "plots"
ARCHITECTURES_PLOT = "architectures.png"
ERRORS_PLOT = "errors.png"
PLOT_FILES = (ARCHITECTURES_PLOT, ERRORS_PLOT)
ITERATION_PATTERN = "iteration_[0-9][0-9][0-9]"
WORKER_PATTERN = ".worker-*"
# What TensorBoard's Keras callback writes under logs/iteration_NNN.
TENSORBOARD_RUNS = ("train", "validation")
TENSORBOARD_PATTERN = "events.out.tfevents.*"


class ProjectInUseError(RuntimeError):
    """Another process is running a search in the same project directory."""


def iteration_folder(iteration):
    return f"iteration_{int(iteration):03d}"


class ProjectDirectory:
    """Reads and writes a search's project directory (see the module docstring).

    Args:
        path: str or path-like, the directory (created on the first write).

    Example:

    >>> project = ProjectDirectory("runs/c10")
    >>> with project.lock():  # one search at a time
    ...     record = project.recorded_search()
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock_descriptor = None

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

    # === One search at a time ===

    @contextlib.contextmanager
    def lock(self):
        """Holds an exclusive operating-system lock on the directory.

        The directory is locked now if it exists, else by `create` when the
        search first writes. A second process asking for it gets a
        `ProjectInUseError` at once. The lock is an advisory `flock` on the
        folder itself, so it leaves no file behind, and the system releases
        it when the process ends, even by SIGKILL. (Where `fcntl` does not
        exist, on Windows, nothing is locked.)

        Raises:
            ProjectInUseError: another process holds the directory.
        """
        if os.path.isdir(self.path):
            self._acquire()
        try:
            yield self
        finally:
            self._release()

    def create(self):
        """Creates the directory (the search's first write) and locks it
        if `lock` found none to lock."""
        if self._lock_descriptor is not None:
            return
        existed = os.path.isdir(self.path)
        os.makedirs(self.path, exist_ok=True)
        self._acquire()
        if not existed:
            return
        # Created by someone else after `lock` looked.
        if self.recorded_search() is not None or self.has_ensemble():
            self._release()
            raise ProjectInUseError(
                f"Another search started in {self.path!r} while this one was being "
                "checked. Use another directory, or wait for it to finish."
            )

    def _acquire(self):
        try:
            import fcntl
        except ImportError:  # Windows
            return
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise ProjectInUseError(
                f"Another process is running a search in {self.path!r}. Wait for it "
                "to finish (or stop it), or use another directory."
            ) from None
        self._lock_descriptor = descriptor

    def _release(self):
        if self._lock_descriptor is not None:
            os.close(self._lock_descriptor)  # closing releases the flock
            self._lock_descriptor = None

    # === Reading ===

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
        if not _is_search_record(record):
            raise ValueError(
                f"{path!r} is not a keras_adanas search record. Pass `overwrite=True` "
                "to start anew there, or use another directory."
            )
        return record

    def has_ensemble(self):
        return os.path.exists(self.ensemble_path)

    # === Writing ===

    def start(self, params, data, anew=False):
        """The search's first writes: creates and locks the directory,
        removes what a search wrote there (`anew`) or only its temporary
        files, then records the search (`record_search`)."""
        self.create()
        if anew:
            self.clear()
        else:
            self.remove_temporary_files()
        self.record_search(params, data)

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
        remove_backup_files(self.backup_dir)

    # === Deleting what a search wrote, and nothing else ===

    def search_files(self):
        """The files a search wrote here that exist now, temporary ones
        included (the workers' projects not)."""
        found = []
        for iteration in matching_paths(self.path, ITERATION_PATTERN):
            found += existing_files(iteration, MEMBER_FILE, REPORT_FILE)
            found += temporary_paths(iteration)
        found += backup_files(self.backup_dir)
        for iteration in matching_paths(self.file(LOGS_FOLDER), ITERATION_PATTERN):
            for run in TENSORBOARD_RUNS:
                found += matching_paths(os.path.join(iteration, run), TENSORBOARD_PATTERN)
        found += existing_files(self.plots_dir, *PLOT_FILES)
        found += temporary_paths(self.plots_dir)
        found += existing_files(self.path, SEARCH_FILE, ENSEMBLE_FILE)
        found += temporary_paths(self.path)
        return found

    def clear(self):
        """Removes every file a search wrote here, and nothing else.

        Folders a search makes (`iteration_NNN`, `backup`, `logs`, `plots`,
        the workers' projects) are removed once empty; one that still holds
        anything else stays, with it. The directory itself stays.
        """
        for worker in matching_paths(self.path, WORKER_PATTERN):
            ProjectDirectory(worker).clear()
            remove_if_empty(worker)
        for path in self.search_files():
            remove_path(path)
        for iteration in matching_paths(self.file(LOGS_FOLDER), ITERATION_PATTERN):
            for run in TENSORBOARD_RUNS:
                remove_if_empty(os.path.join(iteration, run))
            remove_if_empty(iteration)
        for folder in matching_paths(self.path, ITERATION_PATTERN):
            remove_if_empty(folder)
        for folder in (self.backup_dir, self.file(LOGS_FOLDER), self.plots_dir):
            remove_if_empty(folder)

    def remove_temporary_files(self):
        """Removes the temporary files a killed write of a search left here."""
        iterations = matching_paths(self.path, ITERATION_PATTERN)
        for folder in [self.path, self.plots_dir, self.backup_dir, *iterations]:
            for path in temporary_paths(folder):
                remove_path(path)


def _is_search_record(record):
    return (
        isinstance(record, dict)
        and isinstance(record.get("params"), dict)
        and isinstance(record.get("data"), dict)
        and all(
            record["data"].get(part) is None or isinstance(record["data"][part], dict)
            for part in ("train", "selection")
        )
    )
