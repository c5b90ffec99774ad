"""`load_images`: labelled images from any supported source.

Sources: NumPy arrays `(x, y)`, a `tf.data.Dataset` of `(image, label)`, an
`.npz` file with `x_train/y_train/x_test/y_test` (or an `.npy` file of images),
a folder of images in class subfolders, the names `"cifar10"`, `"cifar100"`,
`"mnist"`, `"fashion_mnist"` (through `keras.datasets`, which downloads), and
`"digits"` (scikit-learn's 8x8 digits upscaled to 16x16, offline).

Images stay raw: uint8 or float32 pixels in [0, 255]. Scaling to [-1, 1]
happens inside the model, so a saved model takes raw images.
"""

import os

import keras
import numpy as np

from keras_adanas.data.datasets import read_dataset
from keras_adanas.data.files import read_folder
from keras_adanas.data.images import validate_images
from keras_adanas.data.labels import class_names_of, encode_labels
from keras_adanas.data.pipeline import LabeledImages

try:
    import tensorflow as tf
except ImportError:  # JAX without TensorFlow: `keras_adanas.data.batches` serves the data.
    tf = None

KERAS_DATASETS = {
    "cifar10": 10,
    "cifar100": 100,
    "mnist": 10,
    "fashion_mnist": 10,
}
DIGITS = "digits"
DIGITS_TEST_SIZE = 360
SPLITS = ("train", "test")
DATA_DIR_ENV = "ADANAS_DATA_DIR"


def load_images(source, y=None, *, split="train", classes=None, with_labels=True):
    """Loads and validates labelled images from any supported source.

    Args:
        source: NumPy images `(N, H, W, C)` or `(N, H, W)` (then `y` holds
            the labels), a pair `(x, y)`, a `tf.data.Dataset` of
            `(image, label)` or of images alone (batched or not; finite; it
            is read into memory), a path to an `.npz` file, to a folder of
            class subfolders or to a folder of image files alone (no
            labels; in file-name order), or one of `"cifar10"`,
            `"cifar100"`, `"mnist"`, `"fashion_mnist"`, `"digits"`.
        y: labels when `source` is an array of images; None otherwise.
            Labels may be ints (class indices) or strings (class names),
            all of one kind, of shape `(N,)` or `(N, 1)` (not one-hot).
        split: `"train"` or `"test"`, for the sources that have splits
            (`.npz` files and `keras.datasets` names).
        classes: None to infer the classes (the sorted distinct labels),
            an int number of classes (int labels must lie in `[0, classes)`),
            or the sequence of label values, for example a fitted
            classifier's `classes_`; labels outside it are an error.
        with_labels: False to read the images alone: labels in `source`
            or `y` are dropped unchecked (what `predict` does).

    Returns:
        A `LabeledImages`.

    Example:

    >>> data = load_images("cifar10-dev.npz", split="test")
    >>> data.image_shape, data.num_classes
    ((32, 32, 3), 10)
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    class_names = None
    if tf is not None and isinstance(source, tf.data.Dataset):
        _require_no_y(y, "a tf.data.Dataset")
        x, y = read_dataset(source)
    elif isinstance(source, (str, os.PathLike)):
        _require_no_y(y, "a path or dataset name")
        x, y, class_names, classes = _read_path(os.fspath(source), split, classes)
    elif isinstance(source, tuple) and len(source) == 2 and y is None:
        x, y = source
    else:
        x = source
    images = validate_images(x)
    if not with_labels:
        y = None
    if y is None:
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            classes = range(int(classes))
        classes = tuple(classes or ())
        return LabeledImages(images, None, classes, class_names_of(classes, class_names))
    labels, classes = encode_labels(y, len(images), classes)
    names = class_names_of(classes, class_names)
    return LabeledImages(images, labels, classes, names)


def digits_images(split="train", scale=2):
    """scikit-learn's handwritten digits as uint8 images, upscaled.

    The 1,797 8x8 images (pixel values 0-16) ship inside scikit-learn, so
    this needs no download. They are scaled to 0-255 and enlarged `scale`
    times by pixel repetition (16x16 by default: NASNet-A needs at least
    9x9), with one channel. A fixed stratified split holds out 360 images
    (20%) as the test split.

    Args:
        split: `"train"` (1,437 images) or `"test"` (360).
        scale: int, the upscaling factor.

    Returns:
        `(images, labels)`: uint8 `(N, 8*scale, 8*scale, 1)` and int labels.

    Example:

    >>> x_train, y_train = digits_images()
    >>> x_train.shape, x_train.dtype
    ((1437, 16, 16, 1), dtype('uint8'))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target,
        test_size=DIGITS_TEST_SIZE,
        stratify=digits.target,
        random_state=0,
    )
    return (x_train, y_train) if split == "train" else (x_test, y_test)


def default_data_dir():
    """Where the examples and benchmarks look for data files by default.

    Returns:
        `$ADANAS_DATA_DIR` when it is set, else the current folder.

    Example:

    >>> train = load_images(os.path.join(default_data_dir(), "cifar10-dev.npz"))
    """
    return os.environ.get(DATA_DIR_ENV) or os.curdir


def _require_no_y(y, what):
    if y is not None:
        raise ValueError(
            f"`y` must be None when the data is {what}; its labels come with it. "
            f"Received: y of type {type(y).__name__}"
        )


def _read_path(path, split, classes):
    """Returns (images, labels, class_names, classes) for a path or a name."""
    if path == DIGITS:
        x, y = digits_images(split)
        return x, y, None, classes
    if path in KERAS_DATASETS:
        loader = getattr(keras.datasets, path)
        try:
            (x_train, y_train), (x_test, y_test) = loader.load_data()
        except Exception as error:  # Keras raises a bare Exception offline.
            raise ConnectionError(
                f"Could not download {path!r} through keras.datasets ({error}). "
                "Without network access, pass the images as an .npz file, a folder "
                "or arrays."
            ) from None
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
        return x, y, None, classes if classes is not None else KERAS_DATASETS[path]
    if not os.path.exists(path):
        raise FileNotFoundError(
            "The data path does not exist and is not a dataset name (one of "
            f"{sorted([*KERAS_DATASETS, DIGITS])}). Received: {path!r}"
        )
    if os.path.isdir(path):
        x, y = read_folder(path)
        return x, y, None, classes
    if path.lower().endswith(".npy"):
        return _read_npy(path), None, None, classes
    return _read_npz(path, split, classes)


def _read_npy(path):
    """The images of an `.npy` file (one array, no labels)."""
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"Could not read an .npy file at {path!r}: {error}") from None
    if not isinstance(images, np.ndarray):
        raise ValueError(f"An .npy file must hold one array of images. Received: {path!r}")
    return images


def _read_npz(path, split, classes):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"Could not read an .npz file at {path!r}: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"An .npz data file must be a NumPy archive of x_train/y_train/x_test/"
            f"y_test. Received: {path!r}, which holds a single array (an .npy file)"
        )
    with archive:
        keys = ("x_train", "y_train", "x_test", "y_test")
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(
                f"An .npz data file must hold {list(keys)}. Received: {path!r} "
                f"without {missing} (it holds {sorted(archive.files)})"
            )
        x, y = archive[f"x_{split}"], archive[f"y_{split}"]
        class_names = archive["class_names"].tolist() if "class_names" in archive.files else None
        if classes is None:
            # One class mapping for both splits, so train and test agree.
            both = np.concatenate([np.ravel(archive["y_train"]), np.ravel(archive["y_test"])])
            if class_names is not None and both.dtype.kind in "iu":
                classes = len(class_names)
            elif both.dtype.kind in "iu":
                classes = tuple(int(value) for value in np.unique(both))
            else:
                classes = tuple(sorted(set(both.astype(str).tolist())))
    return x, y, class_names, classes


def load_search_data(data, y=None, validation_data=None, classes=None):
    """The training and selection data of a search, checked.

    Args:
        data, y: the training data, as `load_images` reads it (its `"train"`
            split).
        validation_data: the selection data, as `data` or a pair `(x, y)`
            (its `"test"` split), or None to select on the training data.
        classes: the classes of the ensemble being grown, or None.

    Returns:
        `(train, selection)`, two `LabeledImages`; `selection` is `train`
        when `validation_data` is None.

    Raises:
        ValueError: no labels, fewer than 2 classes, images the subnetwork
            cannot take, or selection data that does not match.

    Example:

    >>> train, selection = load_search_data("cifar10-dev.npz")
    >>> selection is train
    True
    """
    from keras_adanas.nasnet import validate_image_shape

    train = load_images(data, y, split="train", classes=classes)
    if train.labels is None:
        raise ValueError(
            "`fit` needs labels: pass `y` with an array of images, or a source "
            "that holds them. Received: y=None"
        )
    if len(np.unique(train.labels)) < 2:
        raise ValueError(
            "The training data must hold at least 2 classes. Received: labels "
            f"that are all {train.classes[int(train.labels[0])]!r}"
        )
    validate_image_shape(train.image_shape)
    if validation_data is None:
        return train, train
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3:
        raise ValueError(
            "`validation_data` must be `(images, labels)` or a data source; sample "
            "weights are not supported. Received: a "
            f"{type(validation_data).__name__} of 3 items"
        )
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        selection = load_images(*validation_data, split="test", classes=train.classes)
    else:
        selection = load_images(validation_data, split="test", classes=train.classes)
    if selection.image_shape != train.image_shape:
        raise ValueError(
            "`validation_data` images must have the training images' shape "
            f"{train.image_shape}. Received: {selection.image_shape}"
        )
    if selection.labels is None:
        raise ValueError("`validation_data` needs labels. Received: no labels")
    return train, selection
