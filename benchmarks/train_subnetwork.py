"""Trains one NASNet-A subnetwork with the DESIGN.md recipe and reports accuracy
and training throughput.

    python benchmarks/train_subnetwork.py --architecture 2@192 --epochs 3 \
        --batch-size 32 --data cifar10-dev.npz

Throughput is training images/s over the epochs after the first (the first
includes tracing and compilation); with one epoch it is that epoch's.
"""

import argparse
import os
import time

import keras

from keras_adanas.data import default_data_dir, load_images
from keras_adanas.nasnet import NASNetA
from keras_adanas.recipe import auxiliary_targets, compile_subnetwork


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="2@192")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jit-compile",
        choices=["auto", "true", "false"],
        default="auto",
        help="XLA; Keras' auto uses it on TensorFlow only with an accelerator",
    )
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    train = load_images(args.data, split="train")
    test = load_images(args.data, split="test", classes=train.classes)
    steps = -(-len(train) // args.batch_size) * args.epochs
    model = NASNetA(args.architecture, train.num_classes, train.image_shape, seed=args.seed)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    compile_subnetwork(model, total_steps=steps, batch_size=args.batch_size, jit_compile=jit)
    timer = EpochTimer()
    dataset = train.training_dataset(args.batch_size, seed=args.seed).map(auxiliary_targets)
    model.fit(dataset, epochs=args.epochs, callbacks=[timer], verbose=2)

    served = model.without_auxiliary_head()
    served.compile(metrics=["accuracy"])
    _, accuracy = served.evaluate(test.evaluation_dataset(256), verbose=0)
    timed = timer.times[1:] or timer.times
    images_per_second = len(train) * len(timed) / sum(timed)
    print(
        f"architecture={args.architecture} "
        f"trainable params={model.architecture.count_params(train.num_classes):,} "
        f"epochs={args.epochs} batch={args.batch_size} backend={keras.backend.backend()} "
        f"jit_compile={model.jit_compile}"
    )
    print(f"test accuracy: {accuracy:.4f} on {len(test)} images")
    print(f"training throughput: {images_per_second:.1f} images/s (epochs 2..{args.epochs})")
    print(f"epoch times (s): {', '.join(f'{t:.1f}' for t in timer.times)}")


if __name__ == "__main__":
    main()
