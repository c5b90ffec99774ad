"""`LabeledImages`: validated images with their labels, and their batches.

This module is the one place that builds `tf.data` pipelines; they work under
every Keras backend. Where TensorFlow is not installed (a JAX install without
it), the same methods return `keras.utils.PyDataset`s from
`keras_adanas.data.batches` instead.
"""

import dataclasses
import math

import numpy as np

from keras_adanas.data.augmentation import CIFARAugmentation
from keras_adanas.data.batches import EvaluationBatches, TrainingBatches
from keras_adanas.data.images import validate_batch_size

try:
    import tensorflow as tf
except ImportError:  # JAX without TensorFlow: `keras_adanas.data.batches` serves the data.
    tf = None


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
        cutout_size=None,
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

        Without TensorFlow it returns a `keras_adanas.data.batches.TrainingBatches`
        (a `keras.utils.PyDataset`) with the same guarantees, drawn with NumPy:
        the same seed gives other images than with TensorFlow.

        Args:
            batch_size: int, examples per batch.
            augment: bool, whether to apply `CIFARAugmentation` (pad and random
                crop, horizontal flip, cutout).
            cutout_size: int, the cutout's side (0: none), or None for
                `CIFARAugmentation`'s default (half the shorter side).
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
        batch_size = validate_batch_size(batch_size)
        if self.labels is None:
            raise ValueError("Training data needs labels. Received: labels=None")
        for name, value in (("initial_epoch", initial_epoch), ("epochs", epochs)):
            if value is not None and (isinstance(value, bool) or int(value) < 0):
                raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        augmentation = None
        if augment:
            augmentation = CIFARAugmentation(self.image_shape, cutout_size=cutout_size)
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
            A `tf.data.Dataset`, or a `keras_adanas.data.batches.EvaluationBatches`.
        """
        batch_size = validate_batch_size(batch_size)
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
            A `tf.data.Dataset`, or a `keras_adanas.data.batches.EvaluationBatches`
            where TensorFlow is not installed.
        """
        batch_size = validate_batch_size(batch_size)
        batch_size = math.ceil(len(self) / math.ceil(len(self) / batch_size))
        if tf is None:
            return EvaluationBatches(self.images, None, batch_size, pad=True)
        images = tf.data.Dataset.from_tensor_slices(self.images).batch(batch_size)
        return images.map(
            lambda x: _pad_batch(tf.cast(x, "float32"), batch_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)


def _pad_batch(images, batch_size):
    padding = batch_size - tf.shape(images)[0]
    padded = tf.pad(images, [[0, padding], [0, 0], [0, 0], [0, 0]])
    return tf.ensure_shape(padded, [batch_size, *images.shape[1:]])


def _to_float(image, label):
    return tf.cast(image, "float32"), label
