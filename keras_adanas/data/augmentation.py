"""The CIFAR training augmentation: pad and random crop, flip, cutout."""

import numpy as np

try:
    import tensorflow as tf
except ImportError:  # JAX without TensorFlow: `keras_adanas.data.batches` serves the data.
    tf = None


FILL_VALUE = 127.5
"""Mid-grey: the value of the crop's padding and of the cutout, 0 once the
model scales pixels to [-1, 1] (the reference pads and erases after scaling)."""


def _round_half_up(value):
    # Python's round() rounds halves to even (round(2.5) == 2); a size
    # proportional to the image should not depend on the parity.
    return int(value + 0.5)


class CIFARAugmentation:
    """The CIFAR training augmentation of images, from stateless random ops.

    Pads each image by `padding` mid-grey pixels and crops it back at a
    random offset, flips it horizontally at random, and erases one
    `cutout_size` x `cutout_size` square with mid-grey (`FILL_VALUE`, 127.5,
    which scales to 0 in the model), as the reference computes it: the
    square's centre is drawn over the whole image and the square clipped at
    the border (on 32x32 images, 19% of the pixels on average).

    Every random draw is a function of the `seed` passed to the call
    (`tf.random.stateless_*`), never of a hidden state. Keras'
    `RandomCrop`, `RandomFlip` and `RandomErasing` layers draw from a stateful
    `SeedGenerator` (their `seed` argument takes an int, not a tensor), which
    a parallel `tf.data` map consumes in no fixed order: seeded runs would then
    see different images, and a resumed training other images than the
    uninterrupted one.

    `augment_array` is the same augmentation in NumPy, for the input pipeline
    where TensorFlow is not installed; `transform` (TensorFlow) and
    `transform_array` (NumPy) apply the same draws to the same pixels.

    On 32x32 images the defaults are DESIGN.md's recipe: 4 pixels of padding
    and a 16x16 cutout. Other sizes keep the same proportions (an eighth of
    the shorter side for the padding, half of it for the cutout): a fixed
    16x16 cutout would erase the whole of a 16x16 image, and the model would
    train on gray squares.

    Args:
        image_shape: `(height, width, channels)`.
        padding: int, pixels of mid-grey padding on each side before the crop.
            Defaults to `round(min(height, width) / 8)`.
        cutout_size: int, side of the erased square, at most the image side;
            0 erases nothing. Defaults to `max(1, round(min(height, width) / 2))`.

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
        if not 0 <= int(cutout_size) <= min(height, width):
            raise ValueError(
                "`cutout_size` must be in [0, min(height, width)]. Received: "
                f"cutout_size={cutout_size}, image_shape={tuple(image_shape)}"
            )
        self.image_shape = (height, width, channels)
        self.padding = int(padding)
        self.cutout_size = int(cutout_size)

    @property
    def center_limits(self):
        """Cutout centres are drawn in `[0, height) x [0, width)`."""
        return self.image_shape[:2]

    @property
    def offset_limit(self):
        """Crop offsets are drawn in `[0, 2 * padding]`."""
        return 2 * self.padding + 1

    def cutout_corners(self, centers):
        """Each erased square's top-left corner (row, column): its centre
        less half its side. The square is clipped at the image border, so a
        corner may lie outside the image."""
        return centers - self.cutout_size // 2

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
        batch, single = _as_batch(images)
        count = tf.shape(batch)[0]
        crop_seed, flip_seed, row_seed, col_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4)
        )
        height, width = self.center_limits
        offsets = tf.random.stateless_uniform(
            (count, 2), crop_seed, 0, self.offset_limit, dtype=tf.int32
        )
        flips = tf.random.stateless_uniform((count,), flip_seed) < 0.5
        centers = tf.concat(
            [
                tf.random.stateless_uniform((count, 1), row_seed, 0, height, tf.int32),
                tf.random.stateless_uniform((count, 1), col_seed, 0, width, tf.int32),
            ],
            axis=1,
        )
        augmented = self.transform(batch, offsets, flips, centers)
        return augmented[0] if single else augmented

    def transform(self, images, offsets, flips, centers):
        """Crops, flips and erases a batch as given, in TensorFlow.

        Args:
            images: float tensor `(B, H, W, C)` in [0, 255].
            offsets: int tensor `(B, 2)`, each crop's top-left corner in the
                padded image, in `[0, 2 * padding]`.
            flips: bool tensor `(B,)`, whether to flip each crop horizontally.
            centers: int tensor `(B, 2)`, each erased square's centre.

        Returns:
            A float tensor `(B, H, W, C)`.
        """
        height, width, _ = self.image_shape
        p, size = self.padding, self.cutout_size
        images = tf.convert_to_tensor(images)
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=FILL_VALUE)
        rows = offsets[:, :1] + tf.range(height)[None, :]
        cols = offsets[:, 1:] + tf.range(width)[None, :]
        cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
        cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
        flipped = tf.where(flips[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)
        corners = self.cutout_corners(centers)
        top, left = corners[:, :1], corners[:, 1:]
        rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
        inside = ((rows >= top) & (rows < top + size))[:, :, None] & (
            (cols >= left) & (cols < left + size)
        )[:, None, :]
        return tf.where(inside[..., None], tf.constant(FILL_VALUE, flipped.dtype), flipped)

    def augment_array(self, images, rng):
        """The same augmentation in NumPy, for the pipeline without TensorFlow
        (`keras_adanas.data.batches`): the same distribution, other draws.

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
        height, width = self.center_limits
        offsets = rng.integers(0, self.offset_limit, size=(count, 2))
        flips = rng.random(count) < 0.5
        centers = np.stack([rng.integers(0, height, count), rng.integers(0, width, count)], axis=1)
        augmented = self.transform_array(batch, offsets, flips, centers)
        return augmented[0] if single else augmented

    def transform_array(self, images, offsets, flips, centers):
        """`transform` in NumPy: the same pixels from the same draws.

        Args:
            images: array `(B, H, W, C)`, uint8 or float, in [0, 255].
            offsets, flips, centers: as `transform`, NumPy arrays.

        Returns:
            A new float32 array `(B, H, W, C)`.
        """
        height, width, _ = self.image_shape
        p, size = self.padding, self.cutout_size
        padded = np.pad(
            np.asarray(images, "float32"),
            ((0, 0), (p, p), (p, p), (0, 0)),
            constant_values=FILL_VALUE,
        )
        augmented = np.empty(np.shape(images), "float32")
        corners = self.cutout_corners(np.asarray(centers))
        # One slice per image: faster than one fancy-indexed gather of the batch.
        for i, ((top, left), flip, (cut_top, cut_left)) in enumerate(
            zip(offsets, flips, corners, strict=True)
        ):
            crop = padded[i, top : top + height, left : left + width]
            augmented[i] = crop[:, ::-1] if flip else crop
            rows = slice(max(cut_top, 0), max(cut_top + size, 0))
            cols = slice(max(cut_left, 0), max(cut_left + size, 0))
            augmented[i, rows, cols] = FILL_VALUE
        return augmented


def _as_batch(images):
    """`(batch, single)`: `images` with a batch axis, and whether it had none."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:
        return images[None], True
    return images, False
