"""Quiets TensorFlow's "excessive retracing" warning where the traces are expected.

Every iteration of a search builds new Keras models (its candidates, then the
ensemble it selects with), and each model's train and predict functions are
traced once, as they must be. TensorFlow's frequent-tracing detector keys its
count on the Python code of the traced function, and every Keras model's
predict step (or train step) is the same code: after a few models it takes
their first traces for retracing of one function and warns that "5 out of the
last 9 calls ... triggered tf.function retracing", suggesting a bug that is
not there (`cross_val_score` and `GridSearchCV` over `AdaNASClassifier`
printed it up to TensorFlow's limit, twice per process and kind of step).

`expected_traces` drops that one message, from TensorFlow's logger, while
keras_adanas runs its own models; every other message passes, and outside
the context nothing changes. It needs no TensorFlow: on the other backends
the logger is silent anyway.
"""

import contextlib
import logging

RETRACING_MESSAGE = "triggered tf.function retracing"


class _DropRetracingWarning(logging.Filter):
    def filter(self, record):
        return RETRACING_MESSAGE not in record.getMessage()


@contextlib.contextmanager
def expected_traces():
    """A context in which TensorFlow's retracing warning is not logged.

    Example:

    >>> with expected_traces():
    ...     logits = model.predict(images)  # a model built this iteration
    """
    logger = logging.getLogger("tensorflow")
    retracing_filter = _DropRetracingWarning()
    logger.addFilter(retracing_filter)
    try:
        yield
    finally:
        logger.removeFilter(retracing_filter)
