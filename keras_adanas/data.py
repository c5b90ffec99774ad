"""Input pipeline: loading labelled images and the CIFAR augmentation.

Sources accepted by `load_images`: NumPy arrays `(x, y)`, a `tf.data.Dataset`
of `(image, label)`, an `.npz` file with `x_train/y_train/x_test/y_test`, a
folder of images in class subfolders, the names `"cifar10"`, `"cifar100"`,
`"mnist"`, `"fashion_mnist"` (through `keras.datasets`, which downloads), and
`"digits"` (scikit-learn's 8x8 digits upscaled to 16x16, offline).

Images stay raw: uint8 or float32 pixels in [0, 255]. Scaling to [-1, 1]
happens inside the model, so a saved model takes raw images. This module is the
one place that builds `tf.data` pipelines; they work under every Keras backend.
Where TensorFlow is not installed (a JAX install without it), the same methods
return `keras.utils.PyDataset`s from `keras_adanas.batches` instead.
"""

import dataclasses
import math
import os
from collections.abc import Mapping

import keras
import numpy as np

from keras_adanas.batches import EvaluationBatches, TrainingBatches
from keras_adanas.tracing import expected_traces

try:
    import tensorflow as tf
except ImportError:  # JAX without TensorFlow: `keras_adanas.batches` serves the data.
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
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DATA_DIR_ENV = "ADANAS_DATA_DIR"
# Float images with this share of values in [0, 1] are taken for [0, 1]
# images (`check_pixel_range`).
UNIT_RANGE_SHARE = 0.99


@dataclasses.dataclass(frozen=True, eq=False)
class LabeledImages:
    """Validated images with class-index labels.

    Build it with `load_images()`, which validates; the constructor trusts its
    arguments.

    Args:
        images: array `(N, H, W, C)`, uint8 or float32, pixels in [0, 255].
        labels: int32 array `(N,)` of indices into `classes`, or None.
        classes: tuple of the label values, index `i` standing for class `i`.
        class_names: tuple of display names, one per class.

    Example:

    >>> data = load_images(images, ["cat", "dog", "cat"])
    >>> data.labels, data.classes
    (array([0, 1, 0], dtype=int32), ('cat', 'dog'))
    >>> batches = data.training_dataset(batch_size=32, seed=0)
    """

    images: np.ndarray
    labels: np.ndarray | None
    classes: tuple
    class_names: tuple

    def __len__(self):
        return int(self.images.shape[0])

    @property
    def image_shape(self):
        """`(height, width, channels)` as Python ints."""
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def num_classes(self):
        return len(self.classes)

    def training_dataset(
        self,
        batch_size,
        *,
        augment=True,
        shuffle=True,
        epochs=1,
        initial_epoch=0,
        steps_per_epoch=None,
        drop_remainder=False,
        seed=None,
    ):
        """Returns a prefetched `tf.data.Dataset` of `(images, labels)` batches.

        Images come out float32 in [0, 255], labels int32. Each pass over the
        data (an epoch) has its own order and augmentation, drawn with
        stateless random ops from `(seed, epoch, position)`: with a `seed` the
        batches are the same in every run, and a dataset started at
        `initial_epoch` yields exactly what the full one yields from there, so
        an interrupted training resumes on the same batches.

        Without TensorFlow it returns a `keras_adanas.batches.TrainingBatches`
        (a `keras.utils.PyDataset`) with the same guarantees, drawn with NumPy:
        the same seed gives other images than with TensorFlow.

        Args:
            batch_size: int, examples per batch.
            augment: bool, whether to apply `CIFARAugmentation` (pad and random
                crop, horizontal flip, cutout).
            shuffle: bool, whether to shuffle each epoch.
            epochs: int, the epochs to yield, or None to repeat forever.
            initial_epoch: int, the first epoch to yield (0-based).
            steps_per_epoch: int or None, batches taken from each epoch (at
                most one pass); None takes the whole pass.
            drop_remainder: bool, whether to drop the last, smaller batch of
                each pass.
            seed: int or None (a random seed), seed of the order and the
                augmentation.

        Returns:
            A `tf.data.Dataset`, or a `keras.utils.PyDataset` without
            TensorFlow.
        """
        batch_size = _validate_batch_size(batch_size)
        if self.labels is None:
            raise ValueError("Training data needs labels. Received: labels=None")
        for name, value in (("initial_epoch", initial_epoch), ("epochs", epochs)):
            if value is not None and (isinstance(value, bool) or int(value) < 0):
                raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        augmentation = CIFARAugmentation(self.image_shape) if augment else None
        count = len(self)
        per_epoch = count // batch_size if drop_remainder else math.ceil(count / batch_size)
        if steps_per_epoch is not None:
            per_epoch = min(per_epoch, int(steps_per_epoch))
        if tf is None:
            return TrainingBatches(
                self.images,
                self.labels,
                batch_size,
                augmentation=augmentation,
                shuffle=shuffle,
                epochs=None if epochs is None else int(epochs),
                initial_epoch=int(initial_epoch),
                batches_per_epoch=per_epoch,
                seed=seed,
            )
        images, labels = tf.constant(self.images), tf.constant(self.labels)
        base_seed = tf.constant([int(seed), 0], dtype=tf.int64)

        def one_epoch(epoch):
            epoch_seed = tf.random.experimental.stateless_fold_in(base_seed, epoch)
            order = tf.range(count, dtype=tf.int64)
            if shuffle:
                order = tf.random.experimental.stateless_shuffle(order, seed=epoch_seed)

            def augmented_batch(position, indices):
                batch_images = tf.cast(tf.gather(images, indices), "float32")
                if augmentation is not None:
                    batch_images = augmentation(
                        batch_images, tf.random.experimental.stateless_fold_in(epoch_seed, position)
                    )
                return batch_images, tf.gather(labels, indices)

            dataset = tf.data.Dataset.from_tensor_slices(order)
            dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).enumerate()
            dataset = dataset.map(augmented_batch, num_parallel_calls=tf.data.AUTOTUNE)
            return dataset if steps_per_epoch is None else dataset.take(int(steps_per_epoch))

        last_epoch = np.iinfo(np.int64).max if epochs is None else int(epochs)
        dataset = tf.data.Dataset.range(int(initial_epoch), last_epoch).flat_map(one_epoch)
        if epochs is not None:
            # `flat_map` hides the length, which Keras' `fit` needs to iterate
            # a finite dataset once per epoch.
            total = max(0, int(epochs) - int(initial_epoch)) * per_epoch
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(total))
        return dataset.prefetch(tf.data.AUTOTUNE)

    def evaluation_dataset(self, batch_size, *, with_labels=True):
        """Returns batches without augmentation, in order, for `predict` or
        `evaluate`: a prefetched `tf.data.Dataset`, or a `keras.utils.PyDataset`
        where TensorFlow is not installed.

        Args:
            batch_size: int, examples per batch.
            with_labels: bool; elements are `(images, labels)` when True and
                there are labels, else `images` alone. Images are float32.

        Returns:
            A `tf.data.Dataset`, or a `keras_adanas.batches.EvaluationBatches`.
        """
        batch_size = _validate_batch_size(batch_size)
        labels = self.labels if with_labels else None
        if tf is None:
            return EvaluationBatches(self.images, labels, batch_size)
        if labels is None:
            dataset = tf.data.Dataset.from_tensor_slices(self.images).map(
                lambda x: tf.cast(x, "float32")
            )
        else:
            dataset = tf.data.Dataset.from_tensor_slices((self.images, self.labels))
            dataset = dataset.map(_to_float)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def prediction_batches(self, batch_size):
        """Returns the images alone, unaugmented and in order, in batches
        that all have one size: for `predict`.

        Keras traces (TensorFlow) or compiles (JAX) its predict step once per
        batch shape, so a smaller last batch would cost a second compile of
        the whole model. The images are split into `ceil(N / batch_size)`
        batches of one size, at most `batch_size`, and the last is padded
        with black images to it; `predict_images` drops the padding.

        Args:
            batch_size: int, the most images in a batch.

        Returns:
            A `tf.data.Dataset`, or a `keras_adanas.batches.EvaluationBatches`
            where TensorFlow is not installed.
        """
        batch_size = _validate_batch_size(batch_size)
        batch_size = math.ceil(len(self) / math.ceil(len(self) / batch_size))
        if tf is None:
            return EvaluationBatches(self.images, None, batch_size, pad=True)
        images = tf.data.Dataset.from_tensor_slices(self.images).batch(batch_size)
        return images.map(
            lambda x: _pad_batch(tf.cast(x, "float32"), batch_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)


def predict_images(model, data, batch_size):
    """Runs `model.predict` on `data`'s images in batches of one size.

    Args:
        model: a Keras model taking raw images.
        data: a `LabeledImages`.
        batch_size: int, the most images in a batch.

    Returns:
        The model's outputs (NumPy arrays, or a dict of them), one row per
        image of `data`.

    Example:

    >>> logits = predict_images(ensemble, load_images(x), 256)
    """
    with expected_traces():  # `model` is often new: its first trace is due.
        outputs = model.predict(data.prediction_batches(batch_size), verbose=0)
    return keras.tree.map_structure(lambda output: output[: len(data)], outputs)


def _pad_batch(images, batch_size):
    padding = batch_size - tf.shape(images)[0]
    padded = tf.pad(images, [[0, padding], [0, 0], [0, 0], [0, 0]])
    return tf.ensure_shape(padded, [batch_size, *images.shape[1:]])


def _to_float(image, label):
    return tf.cast(image, "float32"), label


def _round_half_up(value):
    # Python's round() rounds halves to even (round(2.5) == 2); a size
    # proportional to the image should not depend on the parity.
    return int(value + 0.5)


class CIFARAugmentation:
    """The CIFAR training augmentation of images, from stateless random ops.

    Pads each image by `padding` zero pixels and crops it back at a random
    offset, flips it horizontally at random, and erases one
    `cutout_size` x `cutout_size` square, placed at random inside the image,
    with 127.5 (the value that scales to 0 in the model).

    Every random draw is a function of the `seed` passed to the call
    (`tf.random.stateless_*`), never of a hidden state. Keras'
    `RandomCrop`, `RandomFlip` and `RandomErasing` layers draw from a stateful
    `SeedGenerator` (their `seed` argument takes an int, not a tensor), which
    a parallel `tf.data` map consumes in no fixed order: seeded runs would then
    see different images, and a resumed training other images than the
    uninterrupted one.

    `augment_array` is the same augmentation in NumPy, for the input pipeline
    where TensorFlow is not installed.

    On 32x32 images the defaults are DESIGN.md's recipe: 4 pixels of padding
    and a 16x16 cutout. Other sizes keep the same proportions (an eighth of
    the shorter side for the padding, half of it for the cutout): a fixed
    16x16 cutout would erase the whole of a 16x16 image, and the model would
    train on gray squares.

    Args:
        image_shape: `(height, width, channels)`.
        padding: int, pixels of zero padding on each side before the crop.
            Defaults to `round(min(height, width) / 8)`.
        cutout_size: int, side of the erased square, at most the image side.
            Defaults to `max(1, round(min(height, width) / 2))`.

    Example:

    >>> augmentation = CIFARAugmentation((32, 32, 3))
    >>> (augmentation.padding, augmentation.cutout_size)
    (4, 16)
    >>> image = augmentation(tf.zeros((32, 32, 3)), seed=tf.constant([1, 2]))
    >>> (CIFARAugmentation((16, 16, 1)).padding,
    ...  CIFARAugmentation((16, 16, 1)).cutout_size)
    (2, 8)
    """

    def __init__(self, image_shape, padding=None, cutout_size=None):
        height, width, channels = (int(d) for d in image_shape)
        side = min(height, width)
        if padding is None:
            padding = _round_half_up(side / 8)
        if cutout_size is None:
            cutout_size = max(1, _round_half_up(side / 2))
        if int(padding) < 0:
            raise ValueError(f"`padding` must be >= 0. Received: padding={padding}")
        if not 0 < int(cutout_size) <= min(height, width):
            raise ValueError(
                "`cutout_size` must be in [1, min(height, width)]. Received: "
                f"cutout_size={cutout_size}, image_shape={tuple(image_shape)}"
            )
        self.image_shape = (height, width, channels)
        self.padding = int(padding)
        self.cutout_size = int(cutout_size)

    def crop(self, images, seed):
        """Pad and random crop: each image moves by up to `padding` pixels in
        each direction, with zero fill."""
        batch, single = _as_batch(images)
        height, width, _ = self.image_shape
        p = self.padding
        offsets = tf.random.stateless_uniform(
            (tf.shape(batch)[0], 2), seed, 0, 2 * p + 1, dtype=tf.int32
        )
        padded = tf.pad(batch, [[0, 0], [p, p], [p, p], [0, 0]])
        rows = offsets[:, :1] + tf.range(height)[None, :]
        cols = offsets[:, 1:] + tf.range(width)[None, :]
        cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
        cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
        return cropped[0] if single else cropped

    def flip(self, images, seed):
        """Random horizontal flip of each image."""
        batch, single = _as_batch(images)
        flips = tf.random.stateless_uniform((tf.shape(batch)[0],), seed) < 0.5
        flipped = tf.where(flips[:, None, None, None], tf.reverse(batch, axis=[2]), batch)
        return flipped[0] if single else flipped

    def cutout(self, images, seed):
        """Fills one random `cutout_size` square inside each image with 127.5."""
        batch, single = _as_batch(images)
        height, width, _ = self.image_shape
        size = self.cutout_size
        count = tf.shape(batch)[0]
        top_seed, left_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        top = tf.random.stateless_uniform((count, 1), top_seed, 0, height - size + 1, tf.int32)
        left = tf.random.stateless_uniform((count, 1), left_seed, 0, width - size + 1, tf.int32)
        rows = tf.range(height)[None, :]
        cols = tf.range(width)[None, :]
        inside = ((rows >= top) & (rows < top + size))[:, :, None] & (
            (cols >= left) & (cols < left + size)
        )[:, None, :]
        erased = tf.where(inside[..., None], tf.constant(127.5, batch.dtype), batch)
        return erased[0] if single else erased

    def __call__(self, images, seed):
        """Augments one `(H, W, C)` float image in [0, 255], or a batch
        `(B, H, W, C)` of them, each with its own draws.

        A batch costs about what one image does: the draws of all its images
        come from one seed, in a few batched ops, so the training pipeline
        augments whole batches. An image alone is augmented as a batch of one.

        Args:
            images: float tensor `(H, W, C)` or `(B, H, W, C)`.
            seed: int tensor of shape `(2,)`.
        """
        crop_seed, flip_seed, cutout_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 3)
        )
        images = self.crop(images, crop_seed)
        images = self.flip(images, flip_seed)
        return self.cutout(images, cutout_seed)

    def augment_array(self, images, rng):
        """The same augmentation in NumPy, for the pipeline without TensorFlow
        (`keras_adanas.batches`): the same distribution, other draws.

        Args:
            images: array `(H, W, C)` or `(B, H, W, C)`, uint8 or float, in
                [0, 255].
            rng: a `numpy.random.Generator`, the source of every draw.

        Returns:
            A new float32 array of the same shape.

        Example:

        >>> augmentation = CIFARAugmentation((32, 32, 3))
        >>> batch = augmentation.augment_array(
        ...     np.zeros((8, 32, 32, 3)), np.random.default_rng(0))
        """
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        count = batch.shape[0]
        height, width, _ = self.image_shape
        size = self.cutout_size
        offsets = rng.integers(0, 2 * self.padding + 1, size=(count, 2))
        flips = rng.random(count) < 0.5
        corners = np.stack(
            [rng.integers(0, height - size + 1, count), rng.integers(0, width - size + 1, count)],
            axis=1,
        )
        augmented = self.transform_array(batch, offsets, flips, corners)
        return augmented[0] if single else augmented

    def transform_array(self, images, offsets, flips, corners):
        """Crops, flips and erases a batch as given, in NumPy.

        Args:
            images: array `(B, H, W, C)`, uint8 or float, in [0, 255].
            offsets: int array `(B, 2)`, each crop's top-left corner in the
                padded image, in `[0, 2 * padding]`.
            flips: bool array `(B,)`, whether to flip each crop horizontally.
            corners: int array `(B, 2)`, each erased square's top-left corner.

        Returns:
            A new float32 array `(B, H, W, C)`.
        """
        height, width, _ = self.image_shape
        p, size = self.padding, self.cutout_size
        padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        augmented = np.empty(images.shape, "float32")
        # One slice per image: 3 to 5 times faster than one fancy-indexed
        # gather of the batch (0.15 against 0.5 ms for 32 CIFAR images).
        for i, ((top, left), flip, (cut_top, cut_left)) in enumerate(
            zip(offsets, flips, corners, strict=True)
        ):
            crop = padded[i, top : top + height, left : left + width]
            augmented[i] = crop[:, ::-1] if flip else crop
            augmented[i, cut_top : cut_top + size, cut_left : cut_left + size] = 127.5
        return augmented


def _as_batch(images):
    """`(batch, single)`: `images` with a batch axis, and whether it had none."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:
        return images[None], True
    return images, False


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
        x, y = _read_dataset(source)
    elif isinstance(source, (str, os.PathLike)):
        _require_no_y(y, "a path or dataset name")
        x, y, class_names, classes = _read_path(os.fspath(source), split, classes)
    elif isinstance(source, tuple) and len(source) == 2 and y is None:
        x, y = source
    else:
        x = source
    images = _validate_images(x)
    if not with_labels:
        y = None
    if y is None:
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            classes = range(int(classes))
        classes = tuple(classes or ())
        return LabeledImages(images, None, classes, _class_names(classes, class_names))
    labels, classes = _encode_labels(y, len(images), classes)
    names = _class_names(classes, class_names)
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
    """Where the examples, benchmarks and tests look for data files.

    Returns:
        `$ADANAS_DATA_DIR` when it is set, else `../shared/data` (relative to
        the current directory).

    Example:

    >>> train = load_images(os.path.join(default_data_dir(), "cifar10-dev.npz"))
    """
    return os.environ.get(DATA_DIR_ENV) or os.path.join(os.pardir, "shared", "data")


def _require_no_y(y, what):
    if y is not None:
        raise ValueError(
            f"`y` must be None when the data is {what}; its labels come with it. "
            f"Received: y of type {type(y).__name__}"
        )


def _validate_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"`batch_size` must be an int. Received: batch_size={batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    return int(batch_size)


def _validate_images(x):
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(
            "Images must be a NumPy array (N, H, W, C) or (N, H, W). Received: "
            f"images of type {type(x).__name__}"
        )
    if isinstance(x, Mapping):
        raise TypeError(
            "Images must be a NumPy array (N, H, W, C) or (N, H, W); for images "
            "with labels, pass the pair `(images, labels)`. Received: a "
            f"{type(x).__name__} with keys {_preview(list(x), limit=4)}"
        )
    try:
        images = np.asarray(x)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Images must be a NumPy array (N, H, W, C) or (N, H, W). Received: "
            f"images of type {type(x).__name__} ({error})"
        ) from None
    if images.dtype == bool or not (
        np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    ):
        received = "" if isinstance(x, np.ndarray) else f" (from a {type(x).__name__})"
        raise TypeError(
            "Images must hold integer or float pixel values. Received: images "
            f"with dtype={images.dtype}{received}"
        )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            "Images must have rank 4 (N, H, W, C), or rank 3 (N, H, W) for "
            f"grayscale. Received: images.shape={images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"The data is empty. Received: images.shape={images.shape}")
    if min(images.shape[1:]) == 0:
        raise ValueError(f"Images must not be empty. Received: images.shape={images.shape}")
    if np.issubdtype(images.dtype, np.floating):
        if not np.all(np.isfinite(images)):
            bad = int(np.count_nonzero(~np.isfinite(images)))
            raise ValueError(
                f"Images must not contain NaN or infinite pixels. Received: {bad} "
                "NaN or infinite pixel values"
            )
    check_pixel_range(images)
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
    return images


def check_pixel_range(images):
    """Checks that images hold raw pixel values, the one rule of `fit` and
    `predict` alike.

    Raw pixels lie in [0, 255]; the model scales them itself. Integer images
    pass as they are. Float images scaled to [0, 1] would be read as nearly
    black: float images are refused when at least 99% of their values lie in
    [0, 1] and some of those are fractions. Raw pixels converted to float are
    whole numbers, so dark raw images pass (a black image too), and a few
    outlying values (`> 1`) do not hide [0, 1] images.

    Args:
        images: a NumPy array of pixels, NaN-free.

    Raises:
        ValueError: values outside [0, 255], or float images scaled to [0, 1].

    Example:

    >>> check_pixel_range(np.array([[0.0, 1.0], [254.0, 255.0]]))  # raw: passes
    >>> check_pixel_range(np.array([[0.1, 0.5], [0.9, 1.0]]))
    Traceback (most recent call last):
    ValueError: Pixel values must be raw [0, 255] values, ...
    """
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise ValueError(
            "Pixel values must lie in [0, 255] (raw images; the model scales "
            f"them). Received: values in [{low}, {high}]"
        )
    if not np.issubdtype(images.dtype, np.floating):
        return
    in_unit_range = images <= 1.0
    share = float(np.mean(in_unit_range))
    if share >= UNIT_RANGE_SHARE and np.any(images[in_unit_range] % 1.0 != 0.0):
        raise ValueError(
            "Pixel values must be raw [0, 255] values, but "
            f"{share:.1%} of them are in [0, 1], with fractions: multiply the images by "
            "255 (or pass uint8 images). Received: float images with max pixel value "
            f"{high}"
        )


def _encode_labels(y, num_images, classes):
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
            f"{_preview(classes)}. Received: labels outside the class range: "
            f"{_preview(unknown)}"
        )
    return np.asarray([index[v] for v in values], dtype=np.int32), classes


def _preview(values, limit=8):
    values = list(values)
    text = ", ".join(repr(v) for v in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}]"


def _class_names(classes, class_names):
    if not classes or isinstance(classes, (int, np.integer)):
        return tuple(class_names or ())
    if class_names is not None and len(class_names) == len(classes):
        return tuple(str(n) for n in class_names)
    return tuple(str(c) for c in classes)


def _read_dataset(dataset):
    """`(images, labels)` of a finite dataset; labels are None when it
    yields images alone."""
    spec = dataset.element_spec
    images_only = isinstance(spec, tf.TensorSpec)
    if not images_only and (not isinstance(spec, tuple) or len(spec) != 2):
        raise ValueError(
            "A tf.data.Dataset must yield (image, label) pairs, or images alone. "
            f"Received: element_spec={spec}"
        )
    if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
        # Reading it into memory would never end.
        raise ValueError(
            "A tf.data.Dataset must be finite: it is read into memory once, and "
            "the search makes its own epochs. Received: a dataset that repeats "
            "forever (drop its `.repeat()`)"
        )
    elements = _bounded(dataset)
    if images_only:
        return _read_image_dataset(dataset, elements), None
    image_spec, label_spec = spec
    batched = _is_batched(image_spec.shape, label_spec.shape)
    images, labels = [], []
    for image, label in elements:
        if batched:
            images.extend(image)
            labels.extend(np.reshape(label, (len(label), -1))[:, 0])
        else:
            images.append(image)
            labels.append(np.reshape(label, (-1,))[0])
    images = _stack_dataset_images(images)
    labels = [v.decode() if isinstance(v, bytes) else v for v in labels]
    return images, np.asarray(labels)


def dataset_read_limit():
    """The most bytes read from a `tf.data.Dataset` of unknown length (half
    of the machine's memory) before it is taken for one that never ends."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def _bounded(dataset):
    """The dataset's elements as NumPy; one of unknown length (a generator,
    a filter) that passes `dataset_read_limit` bytes is refused."""
    if int(dataset.cardinality()) != tf.data.UNKNOWN_CARDINALITY:
        yield from dataset.as_numpy_iterator()
        return
    limit, read = dataset_read_limit(), 0
    for element in dataset.as_numpy_iterator():
        read += sum(np.asarray(part).nbytes for part in keras.tree.flatten(element))
        if read > limit:
            raise ValueError(
                "A tf.data.Dataset of unknown length must end: it is read into memory "
                f"once, and this one passed {limit:,} bytes without ending (it may "
                "repeat forever). Pass a finite dataset, for example `dataset.take(n)`. "
                f"Received: a dataset with cardinality unknown"
            )
        yield element


def _read_image_dataset(dataset, elements):
    """The images of a dataset of images alone, batched or not. A rank-3
    element is one `(H, W, C)` image when its last dimension is at most 4
    (channels), else a batch of `(H, W)` grayscale images."""
    shape = dataset.element_spec.shape
    last = shape[-1] if shape.rank else None
    batched = shape.rank == 4 or (shape.rank == 3 and (last is None or last > 4))
    images = []
    for element in elements:
        if batched:
            images.extend(element)
        else:
            images.append(element)
    return _stack_dataset_images(images)


def _stack_dataset_images(images):
    if not images:
        raise ValueError("The data is empty. Received: a tf.data.Dataset with no elements")
    shapes = {np.shape(image) for image in images}
    if len(shapes) > 1:
        raise ValueError(
            "All images must have the same shape. Received: a tf.data.Dataset "
            f"with image shapes {sorted(shapes)}"
        )
    return np.stack(images)


def _is_batched(image_shape, label_shape):
    """(B, H, W, C) images are batched, (H, W) not; (B, H, W) vs (H, W, C)
    tells by the labels: unbatched labels are scalars or single values."""
    if image_shape.rank == 4:
        return True
    if image_shape.rank == 3:
        return (
            label_shape.rank is not None
            and label_shape.rank >= 1
            and (label_shape.as_list() != [1])
        )
    return False


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
        x, y = _read_folder(path)
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


def folder_image_files(path):
    """The image files of a folder, in the order `load_images` reads them.

    A folder of class subfolders yields its files class by class (classes
    and files in name order); a folder of image files alone yields them in
    name order. Hidden subfolders and files of other kinds are skipped.

    Args:
        path: a folder that `load_images` reads.

    Returns:
        `(files, labels)`: the file paths, and their class subfolder names
        (None for a folder of image files alone).

    Example:

    >>> files, labels = folder_image_files("photos")
    >>> [os.path.basename(f) for f in files]
    ['a.png', 'b.jpg']
    """
    class_dirs = sorted(
        d
        for d in os.listdir(path)
        if os.path.isdir(os.path.join(path, d)) and not d.startswith(".")
    )
    if not class_dirs:
        files = _image_files(path)
        if not files:
            raise ValueError(
                "An image folder must hold one subfolder of images per class (or, "
                f"to predict, image files). Received: {path!r} with neither"
            )
        return files, None
    files, labels = [], []
    for name in class_dirs:
        in_class = _image_files(os.path.join(path, name))
        files += in_class
        labels += [name] * len(in_class)
    if not files:
        raise ValueError(
            f"The data is empty. Received: {path!r} with no image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    return files, labels


def _read_folder(path):
    """`(images, labels)` of a folder of class subfolders, or `(images, None)`
    of a folder of image files alone (for `predict`)."""
    files, labels = folder_image_files(path)
    return _stack_image_files(files), None if labels is None else np.asarray(labels)


def _image_files(folder):
    return [
        os.path.join(folder, file)
        for file in sorted(os.listdir(folder))
        if file.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, file))
    ]


def _eight_bit_pixels(image, path):
    """A PIL image's pixels as uint8, `(H, W)` grayscale or `(H, W, 3)`.

    16-bit grayscale (modes `I;16*`, and `I` as PIL opens 16-bit PNGs) is
    scaled to 8 bits (`round(v / 257)`); converting it to RGB, as other
    modes are, would clip every value above 255 to white.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(
                f"Could not read the image {path!r}: a {image.mode} image with values "
                f"in [{values.min()}, {values.max()}], outside 16 bits"
            )
        return np.round(values / 257.0).astype(np.uint8)
    if image.mode == "F":
        raise ValueError(
            f"Could not read the image {path!r}: floating-point image files (mode F) "
            "are not supported; save 8- or 16-bit images"
        )
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return np.asarray(image)


def _stack_image_files(files):
    from PIL import Image

    arrays = []
    for file_path in files:
        try:
            with Image.open(file_path) as image:
                arrays.append(_eight_bit_pixels(image, file_path))
        except (OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"Could not read the image {file_path!r}: {error}") from None
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        first = {}
        for a, f in zip(arrays, files, strict=False):
            first.setdefault(a.shape[:2], f)
        examples = ", ".join(f"{h}x{w} ({f})" for (h, w), f in sorted(first.items())[:3])
        raise ValueError(
            "All images in a folder must have the same size; resize them first. "
            f"Received: sizes {examples}"
        )
    if any(a.ndim == 3 for a in arrays):
        # Mixed grayscale and colour files: grayscale ones become RGB.
        arrays = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in arrays]
    return np.stack(arrays)
