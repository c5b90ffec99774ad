"""Inference: running a model over images in batches of one shape."""

import keras

from keras_adanas.tracing import expected_traces


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
