"""Recomputing batch-normalization statistics after training."""

import keras
import numpy as np

from keras_adanas.nasnet.ops import DropPath, drop_path_layers, layers_of_type


def recompute_batch_statistics(model, images, batch_size=256):
    """Sets the moving statistics of every batch normalization in `model` to
    the mean of its batch statistics over `images`.

    Training leaves each moving mean and variance an exponential average of
    the last few batches (momentum 0.9: about ten), taken on augmented images
    with drop path on while the weights still moved. A pass over unaugmented
    images with drop path off, in training mode so that every layer sees
    batch-normalized inputs, gives the statistics of the finished network on
    clean images instead. `benchmarks/quality.py` measures what it is worth.

    Only the moving means and variances change: the weights, every
    `DropPath`'s schedule and random state, and each layer's `trainable` flag
    and momentum are as before, so a frozen ensemble member stays frozen.

    Args:
        model: a Keras model of `NASNetA` layers (a member, a `NASNetA`);
            its only training-mode layers must be batch normalizations and
            `DropPath`.
        images: array `(N, H, W, C)` of images the model takes (raw pixels
            for a `NASNetA`), e.g. the training images without augmentation.
        batch_size: int, images per batch. Each full batch counts once; a
            last, smaller batch is left out unless it is the only one.

    Returns:
        `model`.

    Example:

    >>> member = classifier.ensemble_.members[0]
    >>> recompute_batch_statistics(member, train.images)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"`batch_size` must be an int. Received: batch_size={batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "`images` must be a non-empty array (N, height, width, channels). Received: "
            f"shape {images.shape}"
        )
    norms = layers_of_type(model, keras.layers.BatchNormalization)
    drops = drop_path_layers(model)
    saved = {
        "trainable": [layer.trainable for layer in norms],
        "momentum": [layer.momentum for layer in norms],
        "drop_path": [_drop_path_state(layer) for layer in drops],
    }
    starts = list(range(0, len(images) - batch_size + 1, batch_size)) or [0]
    try:
        for layer in norms:
            layer.trainable = True  # a frozen batch normalization ignores `training`
        for layer in drops:
            if layer.built:
                layer.total_steps.assign(0.0)  # keep probability 1
        for count, start in enumerate(starts):
            for layer in norms:
                # moving = (count * moving + batch) / (count + 1): a running mean.
                layer.momentum = count / (count + 1)
            model(images[start : start + batch_size], training=True)
    finally:
        for layer, trainable, momentum in zip(
            norms, saved["trainable"], saved["momentum"], strict=True
        ):
            layer.trainable, layer.momentum = trainable, momentum
        for layer, state in zip(drops, saved["drop_path"], strict=True):
            _restore_drop_path_state(layer, state)
    return model


def _drop_path_state(layer):
    if not layer.built:
        return None
    return [
        keras.ops.convert_to_numpy(v)
        for v in (layer.step, layer.total_steps, layer.seed_generator.state)
    ]


def _restore_drop_path_state(layer: DropPath, state):
    if state is None:
        return
    for variable, value in zip(
        (layer.step, layer.total_steps, layer.seed_generator.state), state, strict=True
    ):
        variable.assign(value)
