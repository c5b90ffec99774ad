"""Label encoding: labels of any kind to class indices, and the classes."""

import numpy as np

from keras_adanas.data.images import preview


def encode_labels(y, num_images, classes):
    """`(labels, classes)`: int32 class indices of `y`, and the class values
    they index (given, or the sorted distinct labels)."""
    if isinstance(y, (list, tuple)) and any(isinstance(v, (str, bytes)) for v in y):
        labels = np.asarray(y, dtype=object)  # NumPy would make ["cat", 1] all strings
    else:
        labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        one_hot = (
            labels.ndim == 2
            and labels.dtype.kind in "iuf"
            and np.isin(labels, (0, 1)).all()
            and (labels.sum(axis=1) == 1).all()
        )
        hint = " (one-hot labels: pass `labels.argmax(axis=1)`)" if one_hot else ""
        raise ValueError(
            f"Labels must have shape (N,) or (N, 1). Received: labels.shape={labels.shape}{hint}"
        )
    if labels.shape[0] != num_images:
        raise ValueError(
            "Images and labels must have the same length. Received: "
            f"{num_images} images and {labels.shape[0]} labels"
        )
    if labels.dtype.kind == "S":
        labels = labels.astype(str)
    if labels.dtype.kind == "O":  # a list or pandas column of mixed values
        labels = _object_labels(labels)
    if (
        labels.dtype.kind == "f"
        and np.all(np.isfinite(labels))
        and np.all(labels == np.round(labels))
    ):
        labels = labels.astype(np.int64)
    if labels.dtype.kind in "iu":
        return _encode_int_labels(labels, classes)
    if labels.dtype.kind in "UO":
        return _encode_named_labels(labels.astype(str), classes)
    raise TypeError(
        "Labels must be ints (class indices) or strings (class names). "
        f"Received: labels with dtype={labels.dtype}"
    )


def _object_labels(labels):
    """An object array of labels (a list or pandas column of Python values) as
    str or int64, or a `TypeError` naming the first label that is neither a
    class name nor a class index like the first one."""
    values = [v.decode() if isinstance(v, bytes) else v for v in labels.tolist()]
    kinds = [_label_kind(v) for v in values]
    if not values or (kinds[0] is not None and kinds.count(kinds[0]) == len(kinds)):
        return np.asarray(values, dtype=np.int64 if kinds and kinds[0] == "int" else str)
    index = next(i for i, kind in enumerate(kinds) if kind is None or kind != kinds[0])
    raise TypeError(
        "Labels must be all ints (class indices) or all strings (class names). "
        f"Received: {values[index]!r} of type {type(values[index]).__name__} at index {index}"
    )


def _label_kind(value):
    if isinstance(value, str):
        return "str"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return "int"
    return None


def _encode_int_labels(labels, classes):
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if classes < 2:
            raise ValueError(f"`classes` must be >= 2. Received: classes={classes}")
        classes = tuple(range(int(classes)))
    if classes is None:
        # The sorted distinct labels, as scikit-learn's `classes_`.
        distinct, indices = np.unique(labels, return_inverse=True)
        if len(distinct) < 2:
            raise ValueError(
                "Classification needs at least 2 classes. Received: labels that "
                f"are all {labels.max()}"
            )
        return indices.reshape(-1).astype(np.int32), tuple(int(v) for v in distinct)
    return _encode_with_classes(labels.tolist(), classes)


def _encode_named_labels(labels, classes):
    if classes is None:
        classes = tuple(sorted(set(labels.tolist())))
        if len(classes) < 2:
            raise ValueError(
                "Classification needs at least 2 classes. Received: labels that "
                f"are all {classes[0]!r}"
            )
    return _encode_with_classes(labels.tolist(), classes)


def _encode_with_classes(values, classes):
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(
            "`classes` must be None, an int or a sequence of label values. "
            f"Received: classes={classes!r}"
        )
    classes = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
    index = {c: i for i, c in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError(f"`classes` must not repeat a value. Received: classes={classes}")
    unknown = sorted({v for v in values if v not in index}, key=str)
    if unknown:
        raise ValueError(
            f"Labels must be among the {len(classes)} classes "
            f"{preview(classes)}. Received: labels outside the class range: "
            f"{preview(unknown)}"
        )
    return np.asarray([index[v] for v in values], dtype=np.int32), classes


def class_names_of(classes, class_names):
    """Display names of `classes`: `class_names` when they match, else the
    classes as strings."""
    if not classes or isinstance(classes, (int, np.integer)):
        return tuple(class_names or ())
    if class_names is not None and len(class_names) == len(classes):
        return tuple(str(n) for n in class_names)
    return tuple(str(c) for c in classes)
