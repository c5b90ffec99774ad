"""Export of a fitted ensemble as a TensorFlow SavedModel."""

import keras

try:
    import tensorflow as tf
except ImportError as error:
    raise ImportError(
        "Exporting a SavedModel needs TensorFlow, which is not installed. Install "
        'it with `pip install "keras-adanas[cpu]"` (CPU) or `pip install '
        '"keras-adanas[gpu]"` (NVIDIA GPU). `AdaNASClassifier.save` writes a '
        ".keras file without it."
    ) from error

from keras_adanas.io_utils import write_directory_atomically


def probabilities_model(ensemble):
    """The ensemble followed by a softmax: images -> class probabilities."""
    probabilities = keras.layers.Softmax(name="probabilities")(ensemble.output)
    return keras.Model(ensemble.input, probabilities, name=f"{ensemble.name}_probabilities")


def export_saved_model(ensemble, path):
    """Writes a SavedModel serving class probabilities, atomically.

    Endpoints (and signatures) of the SavedModel:
    - `serve`: uint8 images `(N, H, W, C)` -> probabilities `(N, classes)`;
    - `serve_float`: float32 images with pixels in [0, 255] -> probabilities.

    Preprocessing is inside the model, so a client sends raw images. The
    SavedModel loads with `tf.saved_model.load(path)` without keras_adanas
    and serves through TensorFlow Serving.

    Args:
        ensemble: an `Ensemble` (images -> logits).
        path: str, the folder to write; an existing one is replaced.
    """
    model = probabilities_model(ensemble)
    spec = (None, *ensemble.input_shape[1:])

    def write(folder):
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            lambda images: model(keras.ops.cast(images, "float32"), training=False),
            input_signature=[tf.TensorSpec(spec, tf.uint8, name="images")],
        )
        archive.add_endpoint(
            "serve_float",
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec(spec, tf.float32, name="images")],
        )
        archive.write_out(folder, verbose=False)

    write_directory_atomically(write, path)
