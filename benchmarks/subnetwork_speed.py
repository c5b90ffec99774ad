"""Training images/s of lone NASNet-A subnetworks, one after another in one
run: how a step's time grows with the cells (N) and the width (F) on this
machine (the rule of `keras_adanas.search.sizing`).

    python benchmarks/subnetwork_speed.py 1@24 1@96 1@192 2@48 --batch-size 32
    python benchmarks/subnetwork_speed.py 1@192 --dtype-policies float32,mixed_bfloat16 \
        --rounds 3

Each network is compiled with the short-run recipe (no auxiliary head, no
drop path), fitted once on `4 * batch` images (tracing and compiling), then
timed over one pass of `--images` images of the data. With several dtype
policies or rounds, the builds take turns (each round times every
architecture under every policy), so that a drift of the host's speed
falls on all of them alike; the median of the rounds is printed last.
"""

import argparse
import os
import statistics
import time

import keras

from keras_adanas.data import default_data_dir, load_images
from keras_adanas.nasnet import NASNetA
from keras_adanas.recipe import SHORT_RUN_RECIPE, compile_subnetwork


def images_per_second(architecture, images, labels, batch_size, jit_compile, dtype="float32"):
    keras.utils.clear_session()
    model = NASNetA(
        architecture,
        num_classes=int(labels.max()) + 1,
        image_shape=images.shape[1:],
        include_auxiliary_head=False,
        drop_path_keep_prob=1.0,
        dtype=dtype,
    )
    compile_subnetwork(model, 1000, batch_size, recipe=SHORT_RUN_RECIPE, jit_compile=jit_compile)
    warm = 4 * batch_size
    model.fit(images[:warm], labels[:warm], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)
    return len(images) / (time.perf_counter() - start), model.count_params()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("architectures", nargs="+", help="N@F of each network, in turn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument(
        "--dtype-policies", default="float32", help="comma-separated Keras dtype policies"
    )
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    data = load_images(args.data)
    images, labels = data.images[: args.images], data.labels[: args.images]
    speeds = {}
    for _ in range(args.rounds):
        for architecture in args.architectures:
            for policy in args.dtype_policies.split(","):
                speed, params = images_per_second(
                    architecture, images, labels, args.batch_size, args.jit_compile, policy
                )
                speeds.setdefault((architecture, policy), []).append(speed)
                print(
                    f"{architecture:>8} {policy:>15} {params:>9,} parameters {speed:7.1f} images/s",
                    flush=True,
                )
    if args.rounds > 1:
        print("median of the rounds:")
        for (architecture, policy), values in speeds.items():
            print(f"{architecture:>8} {policy:>15} {statistics.median(values):7.1f} images/s")


if __name__ == "__main__":
    main()
