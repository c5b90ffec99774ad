"""The first `predict` of an ensemble, where compiling dominates: Keras'
`predict` on batches of 256 with a smaller last one, against
`keras_adanas.inference.predict_images` (batches of one size), as a ratio
measured in the same run.

    python benchmarks/predict_compile.py --data cifar10-dev.npz
    KERAS_BACKEND=jax python benchmarks/predict_compile.py --data ...

Keras traces (TensorFlow) or compiles (JAX) its predict step once per batch
shape, so the smaller last batch costs a second compile of the whole model;
`predict_images` splits the images into batches of one size and pads the last.
Each round builds a fresh ensemble (a fresh model compiles from scratch) of
`--members` random members of `--architecture`; the rounds alternate between
the two ways and each figure quotes its median.
"""

import argparse
import statistics
import time

import keras
import numpy as np

from keras_adanas import Architecture, load_images
from keras_adanas.ensemble import Ensemble, MixtureWeights
from keras_adanas.inference import predict_images
from keras_adanas.search import build_candidates


def fresh_ensemble(architecture, members, num_classes, image_shape, seed):
    candidates = build_candidates([architecture] * members, num_classes, image_shape, 1, seed)
    members = [c.without_auxiliary_head(name=f"member_{i + 1}") for i, c in enumerate(candidates)]
    return Ensemble(members, MixtureWeights("uniform", len(members)))


def keras_predict(model, data):
    return model.predict(data.evaluation_dataset(256, with_labels=False), verbose=0)


def one_shape_predict(model, data):
    return predict_images(model, data, 256)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an .npz file such as cifar10-dev.npz")
    parser.add_argument("--images", type=int, default=300, help="images to predict")
    parser.add_argument("--architecture", default="1@24")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.images % 256 == 0:
        parser.error(f"--images must not be a multiple of 256. Received: {args.images}")

    test = load_images(args.data, split="test")
    data = load_images(test.images[: args.images])
    architecture = Architecture.parse(args.architecture)
    ways = {"keras": keras_predict, "one_shape": one_shape_predict}
    seconds = {name: [] for name in ways}
    outputs = {}
    for round_index in range(args.repeats):
        for name, predict in ways.items():
            model = fresh_ensemble(
                architecture, args.members, test.num_classes, test.image_shape, seed=round_index
            )
            start = time.perf_counter()
            outputs[name] = predict(model, data)
            seconds[name].append(time.perf_counter() - start)
        np.testing.assert_allclose(outputs["one_shape"], outputs["keras"], rtol=1e-4, atol=1e-4)
    keras_seconds = statistics.median(seconds["keras"])
    ours = statistics.median(seconds["one_shape"])
    print(
        f"backend {keras.backend.backend()}, {args.members} x {architecture}, "
        f"{args.images} images, first predict (median of {args.repeats}):"
    )
    print(f"  keras.Model.predict, last batch smaller: {keras_seconds:.2f} s")
    print(f"  predict_images, batches of one size:      {ours:.2f} s")
    print(f"  ratio keras/one-shape: {keras_seconds / ours:.2f}")


if __name__ == "__main__":
    main()
