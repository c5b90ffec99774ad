"""What parts of a short-run training step cost: one NASNet-A trained alone
with the short-run recipe, as built three ways, their `fit` calls
interleaved in one process so that the host's drift hits all three alike.

    python benchmarks/step_parts.py --architecture 1@192 --rounds 5

- `no drop path`: drop path at keep probability 1, which `DropPath` skips
  (the identity);
- `drop-path masks`: keep probability `1 - 1e-7`, which draws and applies
  every mask as drop path at 1 did before that skip (the same outputs to
  float rounding);
- `with auxiliary head`: no drop path, and the auxiliary head a search's
  candidates carried whatever the recipe's auxiliary weight (they now carry
  it only when the weight is above 0).

Each round fits each network once on `--images` images; the table gives
the median images per wall second and per CPU second (the process's user
and system time, which a busy host disturbs less than the wall time).
"""

import argparse
import os
import statistics
import time

import keras

from keras_adanas.data import default_data_dir, load_images
from keras_adanas.nasnet import AUX_LOGITS, LOGITS, NASNetA
from keras_adanas.recipe import SHORT_RUN_RECIPE, compile_subnetwork

BUILDS = {
    "no drop path": {"drop_path_keep_prob": 1.0, "include_auxiliary_head": False},
    "drop-path masks": {"drop_path_keep_prob": 1.0 - 1e-7, "include_auxiliary_head": False},
    "with auxiliary head": {"drop_path_keep_prob": 1.0, "include_auxiliary_head": True},
}


def compiled(architecture, build, images, labels, batch_size):
    model = NASNetA(architecture, int(labels.max()) + 1, images.shape[1:], **build)
    compile_subnetwork(model, 100_000, batch_size, recipe=SHORT_RUN_RECIPE)
    targets = {LOGITS: labels, AUX_LOGITS: labels} if model.include_auxiliary_head else labels
    warm = keras.tree.map_structure(lambda v: v[: 2 * batch_size], targets)
    model.fit(images[: 2 * batch_size], warm, batch_size=batch_size, verbose=0)  # compiles
    return model, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="1@192")
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    args = parser.parse_args()
    data = load_images(args.data)
    images, labels = data.images[: args.images], data.labels[: args.images]
    models = {
        name: compiled(args.architecture, build, images, labels, args.batch_size)
        for name, build in BUILDS.items()
    }
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (model, targets) in models.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(images, targets, batch_size=args.batch_size, verbose=0)
            wall[name].append(len(images) / (time.perf_counter() - start))
            cpu[name].append(len(images) / (time.process_time() - start_cpu))
    baseline = statistics.median(cpu["no drop path"])
    print(f"{args.architecture}, batch {args.batch_size}, {args.rounds} rounds of {len(images)}")
    print(f"{'build':22s} {'images/s':>9s} {'images/CPU-s':>13s} {'CPU ratio':>10s}")
    for name in models:
        per_cpu = statistics.median(cpu[name])
        print(
            f"{name:22s} {statistics.median(wall[name]):9.1f} {per_cpu:13.1f} "
            f"{per_cpu / baseline:10.2f}"
        )


if __name__ == "__main__":
    main()
