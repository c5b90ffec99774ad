"""The time to export an ensemble as a SavedModel: Keras' way (track the
model, then one endpoint per input dtype, each tracing the model) against
`keras_adanas.serving.export_saved_model` (one trace of the model, which the
uint8 endpoint calls; on TensorFlow, the variables listed without `track`'s
walk of the model's object graph; on JAX, no gradients, but lowered for
both CPU and CUDA where Keras' way lowers for this machine's alone), as a
ratio measured in the same run.

    python benchmarks/export_time.py
    python benchmarks/export_time.py --architecture 2@96 --members 3
    KERAS_BACKEND=jax python benchmarks/export_time.py --repeats 2

TensorFlow or JAX backend (TensorFlow installed). Each round exports one
ensemble of `--members` random members of `--architecture` both ways, the
first of them alternating; each figure quotes the median of `--repeats`
rounds. The two SavedModels' probabilities on the same images are checked to
agree.
"""

import argparse
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from predict_compile import fresh_ensemble  # benchmarks/, the script's folder

from keras_adanas import Architecture
from keras_adanas.serving import export_saved_model, probabilities_model


def keras_export(ensemble, path):
    """The export as Keras' documentation shows it, with our two endpoints."""
    model = probabilities_model(ensemble)
    spec = (None, *ensemble.input_shape[1:])
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
    archive.write_out(path, verbose=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="1@24")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    if keras.backend.backend() not in ("tensorflow", "jax"):
        parser.error(f"needs the TensorFlow or JAX backend. Received: {keras.backend.backend()}")

    architecture = Architecture.parse(args.architecture)
    image_shape = (args.image_size, args.image_size, 3)
    images = np.random.default_rng(0).integers(0, 256, (8, *image_shape), dtype="uint8")
    ways = {"keras": keras_export, "ours": export_saved_model}
    seconds = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.repeats):
            ensemble = fresh_ensemble(
                architecture, args.members, args.classes, image_shape, seed=round_index
            )
            served = {}
            # Which goes first alternates: a fresh ensemble's first export
            # also pays for work the second one finds done.
            order = list(ways) if round_index % 2 == 0 else list(ways)[::-1]
            for name in order:
                export = ways[name]
                path = os.path.join(folder, f"{name}_{round_index}")
                start = time.perf_counter()
                export(ensemble, path)
                seconds[name].append(time.perf_counter() - start)
                loaded = tf.saved_model.load(path)  # held: its functions read its variables
                served[name] = loaded.serve(images).numpy()
            np.testing.assert_allclose(served["ours"], served["keras"], rtol=1e-5, atol=1e-6)
    keras_seconds = statistics.median(seconds["keras"])
    ours = statistics.median(seconds["ours"])
    print(
        f"{args.members} x {architecture}, {args.image_size}x{args.image_size} images, "
        f"SavedModel export on {keras.backend.backend()} (median of {args.repeats}):"
    )
    print(f"  Keras' way (track, one trace per endpoint): {keras_seconds:.2f} s")
    print(f"  export_saved_model:                         {ours:.2f} s")
    print(f"  ratio keras/ours: {keras_seconds / ours:.2f}")
    for name, values in seconds.items():
        print(f"  {name} by round: " + ", ".join(f"{value:.2f}" for value in values))


if __name__ == "__main__":
    main()
