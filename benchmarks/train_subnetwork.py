"""Trains one NASNet-A subnetwork with a recipe and reports its test accuracy
and training throughput, over seeds.

    python benchmarks/train_subnetwork.py --architecture 1@96 --epochs 10 --seeds 0,1 \
        --data cifar10-dev.npz                                  # the paper's recipe
    python benchmarks/train_subnetwork.py --architecture 1@96 --epochs 10 --seeds 0,1 \
        --learning-rate 0.1 --cutout 0 --drop-path-keep-prob 1  # a knob at a time

`--recipe auto` starts from the estimator's default recipe for the run's
length and images (`keras_adanas.recipe.recipe_for`), `--recipe paper` (the
default) from the paper's; every flag of the recipe
(`keras_adanas.recipe.Recipe`) then replaces one setting. Each seed prints
its test accuracy as trained and with the batch-norm statistics recomputed on
the training images; the last line is the mean and
spread over the seeds. `--json` appends one line per seed.

Throughput is training images/s over the epochs after the first (the first
includes tracing and compilation); with one epoch it is that epoch's.
"""

import argparse
import dataclasses
import json
import os
import statistics
import time

import keras

from keras_adanas.data import default_data_dir, load_images
from keras_adanas.nasnet import NASNetA, recompute_batch_statistics
from keras_adanas.recipe import (
    PAPER_RECIPE,
    auxiliary_targets,
    compile_subnetwork,
    recipe_for,
)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def accuracy(model, test):
    served = model.without_auxiliary_head()
    served.compile(metrics=["accuracy"])
    return served.evaluate(test.evaluation_dataset(256), verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="2@192")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--json", help="append one JSON line per seed to this file")
    parser.add_argument("--recipe", choices=["paper", "auto"], default="paper")
    for field in dataclasses.fields(PAPER_RECIPE):
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool or isinstance(field.default, bool):
            parser.add_argument(flag, type=lambda text: text.lower() in ("1", "true", "yes"))
        elif isinstance(field.default, str):
            parser.add_argument(flag)
        else:
            parser.add_argument(flag, type=float)
    parser.add_argument(
        "--jit-compile",
        choices=["auto", "true", "false"],
        default="auto",
        help="XLA; Keras' auto uses it on TensorFlow only with an accelerator",
    )
    args = parser.parse_args()
    changes = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(PAPER_RECIPE)
        if getattr(args, field.name) is not None
    }
    train = load_images(args.data, split="train")
    test = load_images(args.data, split="test", classes=train.classes)
    start = PAPER_RECIPE if args.recipe == "paper" else recipe_for(args.epochs, train.image_shape)
    recipe = dataclasses.replace(start, **changes)
    steps = -(-len(train) // args.batch_size) * args.epochs
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    print(f"{args.architecture}, {args.epochs} epochs at batch {args.batch_size}: {recipe}")
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        keras.utils.set_random_seed(seed)
        model = NASNetA(
            args.architecture,
            train.num_classes,
            train.image_shape,
            drop_path_keep_prob=recipe.drop_path_keep_prob,
            weight_decay=recipe.weight_decay,
            seed=seed,
        )
        compile_subnetwork(
            model, total_steps=steps, batch_size=args.batch_size, jit_compile=jit, recipe=recipe
        )
        timer = EpochTimer()
        dataset = train.training_dataset(
            args.batch_size,
            augment=recipe.augment,
            cutout_size=recipe.cutout_size(train.image_shape),
            seed=seed,
        )
        started = time.perf_counter()
        model.fit(dataset.map(auxiliary_targets), epochs=args.epochs, callbacks=[timer], verbose=0)
        seconds = time.perf_counter() - started
        trained = accuracy(model, test)
        recompute_batch_statistics(model, train.images)
        recomputed = accuracy(model, test)
        timed = timer.times[1:] or timer.times
        result = {
            "architecture": args.architecture,
            "epochs": args.epochs,
            "seed": seed,
            "recipe": dataclasses.asdict(recipe),
            "accuracy": trained,
            "accuracy_recomputed": recomputed,
            "seconds": seconds,
            "images_per_second": len(train) * len(timed) / sum(timed),
        }
        results.append(result)
        print(
            f"seed {seed}: test accuracy {trained:.4f}, {recomputed:.4f} with the statistics "
            f"recomputed; {seconds:.0f} s, {result['images_per_second']:.0f} images/s",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as file:
                file.write(json.dumps(result) + "\n")
    for key in ("accuracy", "accuracy_recomputed"):
        values = [r[key] for r in results]
        print(
            f"{key}: mean {statistics.mean(values):.4f}, spread {max(values) - min(values):.4f} "
            f"over {len(values)} seeds"
        )


if __name__ == "__main__":
    main()
