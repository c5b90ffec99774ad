"""The plain Keras CNN a user would write instead of a search, trained to a
wall-clock limit: the baseline of `quality.py --time-limit`.

Three blocks of two 3x3 convolutions with batch normalization and ReLU (32,
64 and 128 filters), each block ending in a 2x2 max pool; global average
pooling and a dense softmax layer. Adam at 2e-3 on a cosine decay over the
planned steps, batch 64, random flips and translations of up to 1/8 of the
image (Keras' preprocessing layers inside the model, active in training only).

    python benchmarks/plain_cnn.py --time-limit 600 --seed 0

The limit covers everything after the data is loaded: building, a timed
probe of `PROBE_STEPS` steps (the first compiles), and the planned epochs,
chosen so that they end within the limit at the probe's speed (training
stops at the limit should the steps slow down).
"""

import argparse
import math
import os
import time

import keras
import numpy as np

from keras_adanas.data import default_data_dir, load_images
from keras_adanas.search.calibration import Deadline, StepTimer

PROBE_STEPS = 12
"""Steps of the speed probe; the first compiles, the median of the rest times."""

BATCH_SIZE = 64
LEARNING_RATE = 2e-3


def plain_cnn(image_shape, num_classes, seed):
    """The CNN, uncompiled; its input takes pixels in [0, 255]."""
    inputs = keras.Input(image_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.RandomFlip("horizontal", seed=seed)(x)
    x = keras.layers.RandomTranslation(0.125, 0.125, fill_mode="constant", seed=seed)(x)
    for filters in (32, 64, 128):
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="plain_cnn")


def compiled(model, total_steps):
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, max(int(total_steps), 1))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_to_time_limit(train, time_limit, seed=0, verbose=0):
    """Trains the CNN on `train` (a `LabeledImages`) within `time_limit` seconds.

    Returns:
        `(model, epochs)`: the trained model and the epochs it was planned.
    """
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    images = train.images.astype("float32")
    labels = np.asarray(train.labels)
    steps_per_epoch = math.ceil(len(images) / BATCH_SIZE)
    # The probe trains a throwaway copy of the same model for its steps.
    probe = compiled(plain_cnn(train.image_shape, train.num_classes, seed), 1000)
    timer = StepTimer()
    probe.fit(
        images[: PROBE_STEPS * BATCH_SIZE],
        labels[: PROBE_STEPS * BATCH_SIZE],
        batch_size=BATCH_SIZE,
        epochs=1,
        verbose=0,
        callbacks=[timer],
    )
    seconds_per_step = float(np.median(timer.seconds[1:]))
    model = plain_cnn(train.image_shape, train.num_classes, seed)
    # The real model compiles again: count it as one probe step's first.
    left = time_limit - (time.perf_counter() - start) - timer.seconds[0]
    epochs = max(1, math.floor(0.97 * left / (seconds_per_step * steps_per_epoch)))
    compiled(model, epochs * steps_per_epoch)
    model.fit(
        images,
        labels,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=[Deadline(start + time_limit, clock=time.perf_counter)],
    )
    return model, epochs


def test_accuracy(model, test):
    predictions = model.predict(test.images.astype("float32"), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=1) == np.asarray(test.labels)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    args = parser.parse_args()
    train = load_images(args.data)
    test = load_images(args.data, split="test", classes=train.classes)
    start = time.perf_counter()
    model, epochs = train_to_time_limit(train, args.time_limit, args.seed, verbose=2)
    seconds = time.perf_counter() - start
    print(f"{epochs} epochs in {seconds:.0f}s: test accuracy {test_accuracy(model, test):.4f}")


if __name__ == "__main__":
    main()
