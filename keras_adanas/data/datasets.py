"""Reading a `tf.data.Dataset` of images (and labels) into memory."""

import os

import keras
import numpy as np

try:
    import tensorflow as tf
except ImportError:  # JAX without TensorFlow: `keras_adanas.data.batches` serves the data.
    tf = None


def read_dataset(dataset):
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
