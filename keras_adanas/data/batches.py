"""The input pipeline where TensorFlow is not installed: in-memory batches
served by `keras.utils.PyDataset`.

`LabeledImages.training_dataset` and `evaluation_dataset` build `tf.data`
pipelines when TensorFlow is importable, on every backend. A JAX install
without TensorFlow gets these instead (so should PyTorch without TensorFlow,
untried: its tests ran with TensorFlow installed):
the same batches under the same rules (each epoch its own shuffle, each batch
its own augmentation, both functions of `(seed, epoch, batch position)`
alone), drawn with NumPy.
The random streams differ from TensorFlow's, so a seeded run gives other
images with TensorFlow than without it, from the same distribution.

Every batch is a function of its index alone: Keras' peeks at the first
batches change nothing, and a resumed training gets exactly the batches the
uninterrupted one would have had from there.
"""

import math

import keras
import numpy as np

_SEED_MASK = 2**64 - 1  # SeedSequence takes non-negative ints only.


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled, augmented `(images, labels)` training batches over epochs.

    One `PyDataset` holds every batch of epochs `initial_epoch` to `epochs`
    in a row, as the `tf.data` pipeline does, so Keras' `fit` with
    `steps_per_epoch` reads each epoch's batches in turn. Build it with
    `LabeledImages.training_dataset`, which validates the arguments.

    Pass `shuffle=False` to `fit`, as the search does: Keras' default
    `shuffle=True` reorders a `PyDataset`'s batches across all its epochs
    (it leaves a `tf.data.Dataset` alone), and these batches are shuffled
    already.

    Args:
        images: array `(N, H, W, C)`, uint8 or float32 pixels in [0, 255].
        labels: int32 array `(N,)`.
        batch_size: int.
        augmentation: a `CIFARAugmentation`, or None for none.
        shuffle: bool, whether each epoch has its own order.
        epochs: int, or None to repeat forever.
        initial_epoch: int, the first epoch served.
        batches_per_epoch: int, the batches taken from each epoch: at most
            one pass, the smaller last batch counting unless it is dropped.
        seed: int, the seed of the orders and the augmentation.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size,
        *,
        augmentation,
        shuffle,
        epochs,
        initial_epoch,
        batches_per_epoch,
        seed,
    ):
        # One worker: batches are made in the thread that runs `fit`. They
        # take well under a millisecond, and Keras' threaded enqueuer stops at
        # each epoch's end, which a `fit` with `steps_per_epoch` crosses.
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.augmentation = augmentation
        self.shuffle = shuffle
        self.epochs, self.initial_epoch = epochs, initial_epoch
        self.seed = int(seed) & _SEED_MASK
        self.per_epoch = batches_per_epoch
        self._order_epoch, self._order = None, None

    @property
    def num_batches(self):
        if self.epochs is None:
            return None
        return max(0, self.epochs - self.initial_epoch) * self.per_epoch

    def epoch_order(self, epoch):
        """The example indices of `epoch` in the order they are served."""
        if self._order_epoch != epoch:
            count = len(self.images)
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(count)
            else:
                order = np.arange(count)
            self._order_epoch, self._order = epoch, order
        return self._order

    def __getitem__(self, index):
        epoch, position = divmod(int(index), self.per_epoch)
        epoch += self.initial_epoch
        start = position * self.batch_size
        indices = self.epoch_order(epoch)[start : start + self.batch_size]
        images = self.images[indices]
        if self.augmentation is None:
            return images.astype("float32"), self.labels[indices]
        # The trailing 1 keeps position 0's entropy apart from the epoch
        # order's: NumPy's SeedSequence may mix `[s, e, 0]` as `[s, e]`.
        rng = np.random.default_rng([self.seed, epoch, position, 1])
        return self.augmentation.augment_array(images, rng), self.labels[indices]


class EvaluationBatches(keras.utils.PyDataset):
    """Float32 batches in order, without augmentation: `(images, labels)`, or
    `images` alone when `labels` is None.

    Args:
        images: array `(N, H, W, C)`, uint8 or float32 pixels in [0, 255].
        labels: int32 array `(N,)`, or None.
        batch_size: int.
        pad: bool; whether a smaller last batch of images (without labels)
            is padded with black images to `batch_size`, as
            `LabeledImages.prediction_batches` asks.
    """

    def __init__(self, images, labels, batch_size, pad=False):
        super().__init__(workers=1, use_multiprocessing=False)
        if pad and labels is not None:
            raise ValueError("Only batches of images without labels are padded.")
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.pad = pad

    @property
    def num_batches(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        images = self.images[window].astype("float32")
        if self.pad and len(images) < self.batch_size:
            padding = np.zeros((self.batch_size - len(images), *images.shape[1:]), "float32")
            images = np.concatenate([images, padding])
        return images if self.labels is None else (images, self.labels[window])
