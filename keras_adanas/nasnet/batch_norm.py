"""Batch normalization synchronized over the replicas of a strategy for a training."""

import contextlib

import keras

from keras_adanas.nasnet.ops import layers_of_type


@contextlib.contextmanager
def synchronized_batch_norm(models, enabled=True):
    """Makes every batch normalization of `models` synchronized while the
    block runs (`keras.layers.BatchNormalization(synchronized=True)`).

    In training under a multi-replica TensorFlow strategy, each replica then
    normalizes with the mean and variance of the whole global batch instead
    of its own share of it. The layers are set back afterwards, so a saved
    model stays one any backend loads. It changes nothing outside a strategy.

    Args:
        models: Keras models or layers.
        enabled: bool; False makes this a context that does nothing.

    Example:

    >>> with synchronized_batch_norm([candidate], enabled=replicas > 1):
    ...     distiller.fit(dataset)
    """
    layers = [
        layer
        for model in models
        for layer in layers_of_type(model, keras.layers.BatchNormalization)
        if enabled and not layer.synchronized
    ]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False
