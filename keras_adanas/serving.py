"""Export of a fitted ensemble as a TensorFlow SavedModel.

    python -m keras_adanas.serving MODEL.keras SAVED_MODEL_DIR

exports a saved ensemble; `export_saved_model` runs this under the TensorFlow
backend when the ensemble was trained on PyTorch.
"""

import os
import subprocess
import sys
import tempfile

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

from keras_adanas.io_utils import check_folder_path, write_directory_atomically

# The platforms a SavedModel exported from JAX runs on (jax2tf's names).
SERVING_PLATFORMS = ("cpu", "cuda")


def probabilities_model(ensemble):
    """The ensemble followed by a softmax: images -> class probabilities."""
    probabilities = keras.layers.Softmax(name="probabilities")(ensemble.output)
    return keras.Model(ensemble.input, probabilities, name=f"{ensemble.name}_probabilities")


def check_export_path(path):
    """Refuses an export destination whose contents the export would destroy.

    The export replaces `path` as a whole, so `path` must be new, an empty
    folder, or the folder of an earlier SavedModel (it holds
    `saved_model.pb`). A file, or a folder holding anything else (a project
    directory, say), is refused before anything is written.

    Args:
        path: str or `os.PathLike`, the SavedModel folder to write.

    Returns:
        The absolute path, as a str.

    Raises:
        TypeError: `path` is not a str or `os.PathLike`.
        ValueError: `path` is a file, a folder holding no SavedModel, or lies
            under a file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a str or os.PathLike, the SavedModel folder to write. "
            f"Received: path={path!r} of type {type(path).__name__}"
        )
    absolute = os.path.abspath(os.fspath(path))
    if os.path.isdir(absolute):
        if os.listdir(absolute) and not os.path.isfile(os.path.join(absolute, "saved_model.pb")):
            raise ValueError(
                "`path` is a folder that holds no SavedModel (no saved_model.pb), "
                "and the export would delete it with everything in it. Expected a "
                "new folder, an empty one, or an earlier SavedModel's. "
                f"Received: path={os.fspath(path)!r}"
            )
        return absolute
    return check_folder_path(path, "path")  # a file, or a path under one


def export_saved_model(ensemble, path):
    """Writes a SavedModel serving class probabilities, atomically.

    Endpoints (and signatures) of the SavedModel:
    - `serve` (also `serving_default`): uint8 images `(N, H, W, C)` ->
      probabilities `(N, classes)`;
    - `serve_float`: float32 images with pixels in [0, 255] -> probabilities.

    Preprocessing is inside the model, so a client sends raw images. The
    SavedModel loads with `tf.saved_model.load(path)` without keras_adanas
    and serves through TensorFlow Serving. It is for inference: exported
    from the JAX backend, it holds no gradients, and it runs on a CPU or an
    NVIDIA GPU (`SERVING_PLATFORMS`), whichever platform exported it.

    Args:
        ensemble: an `Ensemble` (images -> logits).
        path: str or `os.PathLike`, the folder to write: a new one, an empty
            one, or an earlier SavedModel's, which is replaced
            (`check_export_path`).

    Example:

    >>> export_saved_model(classifier.ensemble_, "adanas_savedmodel")
    >>> served = tf.saved_model.load("adanas_savedmodel")
    >>> probabilities = served.serve(uint8_images)
    """
    path = check_export_path(path)
    if keras.backend.backend() == "torch":
        _export_under_tensorflow(ensemble, path)
        return
    model = probabilities_model(ensemble)
    spec = (None, *ensemble.input_shape[1:])
    uint8_images = tf.TensorSpec(spec, tf.uint8, name="images")
    float_images = tf.TensorSpec(spec, tf.float32, name="images")

    def write(folder):
        archive = keras.export.ExportArchive()
        if keras.backend.backend() == "jax":
            # `track` makes the TensorFlow variables the converted function
            # reads.
            archive.track(model)
            options = {
                "jax2tf_kwargs": {
                    # TensorFlow's saver traces the gradient of jax2tf's
                    # custom-gradient wrapper, four fifths of the export's
                    # time, for a SavedModel that only serves.
                    "with_gradient": False,
                    # jax2tf's default, the exporting machine's platform
                    # alone, would not run anywhere else.
                    "native_serialization_platforms": SERVING_PLATFORMS,
                }
            }
        else:
            # No `archive.track(model)`: besides listing the variables, it
            # walks the model's whole object graph for lookup tables, which
            # an ensemble has none of.
            for name in ("variables", "trainable_variables", "non_trainable_variables"):
                archive.add_variable_collection(name, getattr(model, name))
            options = {}
        serve_float = archive.add_endpoint(
            "serve_float",
            lambda images: model(images, training=False),
            input_signature=[float_images],
            **options,
        )
        # The model is traced (converted, on JAX) once: `serve` casts and
        # calls `serve_float`. Registered by name, "serving_default" (TF
        # Serving's) is the uint8 one, though `serve_float` came first.
        serve = tf.function(
            lambda images: serve_float(tf.cast(images, tf.float32)),
            input_signature=[uint8_images],
            autograph=False,
        )
        archive.add_endpoint("serving_default", serve)
        archive.add_endpoint("serve", serve)
        archive.write_out(folder, verbose=False)

    write_directory_atomically(write, path)


def _export_under_tensorflow(ensemble, path):
    """Exports a PyTorch-backend ensemble from a TensorFlow-backend process.

    Keras exports a PyTorch model through torch_xla's StableHLO, which needs a
    torch_xla built for the installed torch, often not available. A `.keras`
    file is the same on every
    backend, so the ensemble is saved to one and exported by
    `python -m keras_adanas.serving` with `KERAS_BACKEND=tensorflow`.
    """
    with tempfile.TemporaryDirectory(prefix="keras-adanas-export-") as folder:
        saved = os.path.join(folder, "ensemble.keras")
        ensemble.save(saved)
        command = [sys.executable, "-m", "keras_adanas.serving", saved, os.path.abspath(path)]
        environment = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            "Exporting the SavedModel under the TensorFlow backend failed "
            f"(exit status {result.returncode}):\n{result.stderr[-3000:]}"
        )


def _main(argv):
    if len(argv) != 2:
        print("usage: python -m keras_adanas.serving MODEL.keras SAVED_MODEL_DIR", file=sys.stderr)
        return 2
    check_export_path(argv[1])  # before the model loads
    import keras_adanas  # noqa: F401  (registers the layers the file names)

    export_saved_model(keras.saving.load_model(argv[0]), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
