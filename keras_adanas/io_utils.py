"""Atomic writes: every file or folder appears whole or not at all.

Each writer writes to a temporary name in the destination's folder, flushes
it to the disk (`os.fsync`), then renames it over the destination
(`os.replace`, atomic on POSIX), so a reader never sees a half-written file,
even after a crash of the machine: without the flush, a file system may commit
the rename before the data and leave an empty file in its place. The folder
holding the destination is flushed after the rename, so that once a writer
returns, the rename itself survives a crash too.

Temporary names hold `TEMPORARY_MARKER` (`.NAME.adanas-XXXXXXXX.tmp...`), so
that what a killed write left behind is told apart from anyone else's files.
Every file and folder gets the permissions the process's umask gives a new
one (`tempfile` would make them readable by their owner alone).
"""

import fnmatch
import json
import os
import shutil
import tempfile

import numpy as np

TEMPORARY_MARKER = "adanas-"
"""Part of every temporary name these writers use: `.NAME.adanas-*.tmp*`."""
TEMPORARY_PATTERN = f".*.{TEMPORARY_MARKER}*.tmp*"
"""The glob pattern of those names."""


def _temporary_path(path, suffix=""):
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.{TEMPORARY_MARKER}", suffix=f".tmp{suffix}", dir=folder
    )
    os.close(handle)
    return temporary


def current_umask():
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as status:  # Linux >= 4.7
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path, folder=False):
    """Gives `path` the mode a new file (or folder) gets under the umask:
    `0o666` (`0o777`) less the umask, where `tempfile` gives `0o600` (`0o700`)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def _write_file_atomically(write, path, suffix=""):
    """Calls `write(temporary_path)`, then renames the file to `path`."""
    temporary = _temporary_path(path, suffix=suffix)
    try:
        write(temporary)
        honour_umask(temporary)
        _flush_to_disk(temporary)
        os.replace(temporary, path)
        _flush_folder_to_disk(os.path.dirname(temporary))
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _flush_to_disk(path):
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _flush_folder_to_disk(folder):
    """Flushes a folder's entries (the names in it) to the disk.

    Windows cannot open a folder as a file; there, NTFS journals the rename
    and nothing is done.
    """
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_model_atomically(model, path):
    """`model.save(path)` in the `.keras` format, atomically."""
    _write_file_atomically(model.save, path, suffix=".keras")


def write_json_atomically(data, path):
    """Writes `data` as indented JSON, atomically."""

    def write(temporary):
        with open(temporary, "w") as file:
            json.dump(data, file, indent=2, sort_keys=True)

    _write_file_atomically(write, path)


def save_arrays_atomically(path, **arrays):
    """`numpy.savez(path, **arrays)`, atomically; `path` ends in `.npz`."""

    def write(temporary):
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)

    _write_file_atomically(write, path, suffix=".npz")


def save_figure_atomically(figure, path):
    """Saves a matplotlib `Figure` as a PNG file, atomically."""
    _write_file_atomically(lambda temporary: figure.savefig(temporary, format="png"), path)
    return path


def check_folder_path(path, argument):
    """Checks that `path` is a folder, or could be made one.

    Args:
        path: str or `os.PathLike`.
        argument: str, the argument's name for the error message.

    Returns:
        The absolute path, as a str.

    Raises:
        ValueError: `path` is a file, or lies under one.
    """
    absolute = os.path.abspath(os.fspath(path))
    if os.path.lexists(absolute) and not os.path.isdir(absolute):
        raise ValueError(
            f"`{argument}` is an existing file, not a folder. "
            f"Received: {argument}={os.fspath(path)!r}"
        )
    ancestor = os.path.dirname(absolute)
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(
            f"`{argument}` lies under {ancestor!r}, which is a file, not a folder. "
            f"Received: {argument}={os.fspath(path)!r}"
        )
    return absolute


def check_file_path(path, argument):
    """Checks that `path` could be written as a file: not a folder, and not
    under a file.

    Args:
        path: str or `os.PathLike`.
        argument: str, the argument's name for the error message.

    Returns:
        The absolute path, as a str.

    Raises:
        ValueError: `path` is a folder, or lies under a file.
    """
    absolute = os.path.abspath(os.fspath(path))
    if os.path.isdir(absolute):
        raise ValueError(
            f"`{argument}` is an existing folder, not a file. "
            f"Received: {argument}={os.fspath(path)!r}"
        )
    check_folder_path(os.path.dirname(absolute), argument)
    return absolute


def plain_json(value):
    """`value` as plain JSON data: NumPy scalars become the Python numbers
    they stand for (a grid of `GridSearchCV` built from arrays passes them).

    Raises:
        TypeError: `value` holds something JSON cannot hold.
    """

    def convert(item):
        if isinstance(item, np.generic):
            return item.item()
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")

    return json.loads(json.dumps(value, default=convert))


def read_json(path):
    """Reads a JSON file written by `write_json_atomically`.

    Raises:
        ValueError: naming the file, when it is not valid JSON.
    """
    try:
        with open(path) as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path!r} is not a readable JSON file: {error}") from None


def write_directory_atomically(write, path):
    """Calls `write(temporary_folder)`, then moves that folder to `path`.

    An existing `path` is replaced: it is renamed aside first and removed
    once the new folder is in place.
    A symbolic link at `path` stays: the folder it points to is replaced.
    """
    path = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    prefix = f".{os.path.basename(path)}.{TEMPORARY_MARKER}"
    temporary = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent)
    old = None
    try:
        honour_umask(temporary, folder=True)
        write(temporary)
        for root, _, names in os.walk(temporary):
            for name in names:
                _flush_to_disk(os.path.join(root, name))
            _flush_folder_to_disk(root)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=prefix, suffix=".tmp.old", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        os.replace(temporary, path)
        _flush_folder_to_disk(parent)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        if old and os.path.exists(old):
            shutil.rmtree(old, ignore_errors=True)


# === Finding and removing what these writers wrote ===


def matching_paths(folder, pattern):
    """The entries of `folder` whose names match the glob `pattern`, sorted
    (none when `folder` is missing or a symbolic link)."""
    if not os.path.isdir(folder) or os.path.islink(folder):
        return []
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if fnmatch.fnmatchcase(name, pattern)
    )


def existing_files(folder, *names):
    """The paths of those `names` that are files in `folder`."""
    paths = (os.path.join(folder, name) for name in names)
    return [path for path in paths if os.path.isfile(path) and not os.path.islink(path)]


def temporary_paths(folder):
    """What a killed atomic write left in `folder`: files, and folders of
    `write_directory_atomically`, named with `TEMPORARY_MARKER`."""
    return matching_paths(folder, TEMPORARY_PATTERN)


def remove_path(path):
    """Removes a file, or a whole temporary folder of `write_directory_atomically`."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def remove_if_empty(folder):
    """Removes `folder` when it is an empty folder (not a link); else nothing."""
    if os.path.isdir(folder) and not os.path.islink(folder) and not os.listdir(folder):
        os.rmdir(folder)
