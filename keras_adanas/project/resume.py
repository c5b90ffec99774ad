"""Resume policy: when a fit may go on with what a project directory holds.

A fit resumes a directory's search only with the same arguments (but those
in `MAY_DIFFER`) on the same data (`data_fingerprint`); anything else is a
`ValueError` naming the difference, unless the fit overwrites.
"""

import hashlib

import numpy as np

RUNTIME_OPTIONS = (
    "directory",
    "overwrite",
    "warm_start",
    "verbose",
    "strategy",
    "tensorboard",
    "jit_compile",
)
"""Arguments that say how a search runs here and now, not what it computes:
`AdaNASClassifier.load` does not restore them (a saved classifier never
writes to, or clears, the directory it was trained in unless told so again)."""

MAY_DIFFER = (*RUNTIME_OPTIONS, "max_iterations", "time_limit")
"""Arguments that may change between a search and its resumption (a
resumed search's `time_limit` counts what its earlier runs spent)."""


def data_fingerprint(data):
    """A JSON-serializable identity of `LabeledImages`: size, shape, classes, digest.

    Example:

    >>> data_fingerprint(load_images(x, y))["examples"]
    8
    """
    digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    if data.labels is not None:
        digest.update(np.ascontiguousarray(data.labels).tobytes())
    return {
        "examples": len(data),
        "image_shape": list(data.image_shape),
        "classes": [c.item() if isinstance(c, np.generic) else c for c in data.classes],
        "sha256": digest.hexdigest(),
    }


def data_fingerprints(train, selection):
    """The fingerprints of a search's data: `{"train": ..., "selection": ...}`
    (`selection` None when the search selects on the training data)."""
    return {
        "train": data_fingerprint(train),
        "selection": None if selection is train else data_fingerprint(selection),
    }


def check_same_arguments(path, recorded, mine, defaults):
    """Refuses to resume a search run with other arguments.

    Args:
        path: the project directory, for the message.
        recorded: dict, the arguments recorded there (JSON).
        mine: dict, this fit's arguments (JSON).
        defaults: dict, the default arguments (JSON): an argument newer than
            the record had its default value there.

    Raises:
        ValueError: naming each argument that differs.
    """
    theirs = {**defaults, **recorded}
    differ = [k for k in mine if k not in MAY_DIFFER and mine[k] != theirs.get(k)]
    if differ:
        raise ValueError(
            f"The directory {path!r} holds a search run with other "
            "arguments: "
            + ", ".join(f"{k}={theirs.get(k)!r} there, {mine[k]!r} here" for k in differ)
            + ". Use the same arguments to resume, another directory, or "
            "`overwrite=True` to start anew there."
        )


def check_same_data(path, recorded, fingerprints):
    """Refuses to resume a search on other data.

    Args:
        path: the project directory, for the message.
        recorded: the data fingerprints recorded there, or None.
        fingerprints: this fit's (`data_fingerprints`).

    Raises:
        ValueError: naming what differs.
    """
    if recorded is None or recorded == fingerprints:
        return
    differ = []
    for part in ("train", "selection"):
        there, here = recorded.get(part), fingerprints[part]
        if there == here:
            continue
        if there is None or here is None:
            differ.append(f"{part} data given {'here' if here else 'there'} only")
            continue
        differ += [
            f"{part} {key}: {there.get(key)!r} there, {here[key]!r} here"
            if key != "sha256"
            else f"other {part} images or labels"
            for key in here
            if there.get(key) != here[key]
        ]
    raise ValueError(
        f"The directory {path!r} holds a search on other data ("
        + "; ".join(differ)
        + "). Fit on the same data to resume, use another directory, or pass "
        "`overwrite=True` to start anew there."
    )
