"""A fitted classifier's predictions: `EnsemblePredictions`."""

import numpy as np

from keras_adanas.data import load_images
from keras_adanas.inference import predict_images
from keras_adanas.nasnet import recompute_batch_statistics
from keras_adanas.parameters import check_sample_weight
from keras_adanas.search import ensemble_crossentropy

PREDICT_BATCH_SIZE = 128


def load_for_prediction(data, y, classes, model, labels_required=False, split="test"):
    """Reads images to predict (and labels to score) for a fitted model.

    Args:
        data: images, a pair `(images, labels)`, or anything `load_images`
            accepts (its `split` split).
        y: labels when `data` is an array of images, or None.
        classes: the model's class labels.
        model: the model, whose input shape the images must have.
        labels_required: whether labels are read (and required), to score.
        split: `"test"` or `"train"`, for sources with splits.

    Returns:
        A `LabeledImages`.

    Raises:
        ValueError: images of another shape, or no labels where required.
    """
    if y is None and isinstance(data, tuple) and len(data) == 2:
        data, y = data
    loaded = load_images(data, y, split=split, classes=list(classes), with_labels=labels_required)
    expected = tuple(model.input_shape[1:])
    if loaded.image_shape != expected:
        # A rank-3 array reads as a batch of grayscale images.
        one_image = tuple(getattr(data, "shape", ())) == expected
        hint = " (one image: pass a batch of one, `images[None]`)" if one_image else ""
        raise ValueError(
            f"Images must have shape {expected}, as in training. Received: "
            f"images of shape {loaded.image_shape}{hint}"
        )
    if labels_required and loaded.labels is None:
        raise ValueError("Scoring needs labels. Received: y=None")
    return loaded


def ensemble_logits(model, data, batch_size):
    """`model`'s logits on `data` (`LabeledImages`), as a float64 array."""
    return np.asarray(predict_images(model, data, batch_size), dtype="float64")


class EnsemblePredictions:
    """The predictions of a fitted classifier holding `ensemble_` (images ->
    logits) and `classes_`, in scikit-learn's terms: `AdaNASClassifier`
    mixes it in."""

    def predict_proba(self, data):
        """Class probabilities `(N, len(classes_))`, columns in the order of
        `classes_`. `data`: images, or anything `load_images` accepts (its
        `"test"` split); labels in it are ignored."""
        logits = self._logits(self._load(data))
        shifted = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, data):
        """Predicted labels, taken from `classes_`."""
        probabilities = self.predict_proba(data)
        return self.classes_[np.argmax(probabilities, axis=1)]

    def score(self, data, y=None, sample_weight=None):
        """Accuracy in [0, 1] on labelled data (its `"test"` split), weighted
        by `sample_weight` (one non-negative weight per image) if given."""
        loaded = self._load(data, y, labels_required=True)
        weights = check_sample_weight(sample_weight, len(loaded))
        predictions = np.argmax(self._logits(loaded), axis=1)
        return float(np.average(predictions == loaded.labels, weights=weights))

    def evaluate(self, data, y=None):
        """Returns `{"loss": cross-entropy, "accuracy": ...}` on labelled data."""
        loaded = self._load(data, y, labels_required=True)
        logits = self._logits(loaded)
        return {
            "loss": ensemble_crossentropy(logits, loaded.labels),
            "accuracy": float(np.mean(np.argmax(logits, axis=1) == loaded.labels)),
        }

    def recompute_batch_statistics(self, data, y=None, batch_size=256):
        """Recomputes every member's batch-normalization statistics on the
        images of `data` (its `"train"` split; labels unused), unaugmented, in
        batches of `batch_size` (`keras_adanas.nasnet.recompute_batch_statistics`).
        Nothing is written: `save` the classifier to keep it. Returns self."""
        loaded = self._load(data, y, split="train")
        for member in self.ensemble_.members:
            recompute_batch_statistics(member, loaded.images, batch_size=batch_size)
        return self

    def _load(self, data, y=None, labels_required=False, split="test"):
        self._check_fitted()
        return load_for_prediction(
            data, y, self.classes_, self.ensemble_, labels_required=labels_required, split=split
        )

    def _logits(self, loaded):
        return ensemble_logits(self.ensemble_, loaded, PREDICT_BATCH_SIZE)

    def _check_fitted(self):
        if not hasattr(self, "ensemble_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "This AdaNASClassifier is not fitted yet. Call `fit` first, or "
                "`AdaNASClassifier.load(path)`."
            )
