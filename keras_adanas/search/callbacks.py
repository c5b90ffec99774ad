"""Callbacks of an iteration's training."""

import time

import keras


class ThroughputTimer(keras.callbacks.Callback):
    """Times training after its first batch, which includes tracing and
    compilation, so `images_per_second` is the steady-state rate.

    Args:
        batch_size: int, images per batch.

    Attributes:
        images_per_second: float after `fit`, or None when no batch ran.

    Example:

    >>> timer = ThroughputTimer(batch_size=32)
    >>> model.fit(dataset, callbacks=[timer])
    >>> timer.images_per_second
    """

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.images_per_second = None

    def on_train_begin(self, logs=None):
        self._start, self._first_batch_end, self._batches = time.perf_counter(), None, 0
        self.images_per_second = None

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._first_batch_end is None:
            self._first_batch_end = time.perf_counter()

    def on_train_end(self, logs=None):
        end = time.perf_counter()
        if self._batches == 0:
            self.images_per_second = None
            return
        if self._batches > 1:
            seconds, batches = end - self._first_batch_end, self._batches - 1
        else:
            seconds, batches = end - self._start, self._batches
        self.images_per_second = batches * self.batch_size / max(seconds, 1e-9)
