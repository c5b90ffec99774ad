"""A small AdaNAS search that can kill itself with SIGKILL at a chosen point.

Run by tests/test_reliability.py in a subprocess:

    python tests/resumable_search.py DIRECTORY KILL_POINT OUTPUT.npz

KILL_POINT is one of `none`, `training` (iteration 2, second epoch, after its
first batch) and `saving` (iteration 2, halfway through writing
`ensemble.keras`). Without a kill, the search writes the test images'
probabilities and its members to OUTPUT.npz.
"""

import json
import os
import signal
import sys

import keras
import numpy as np

from keras_adanas import AdaNASClassifier, Architecture, load_images
from keras_adanas.ensemble import Ensemble

# The CIFAR-10 sample committed with the tests.
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cifar10-sample.npz")


class TwoWidths:
    """Proposes 1@24 and 1@48 every iteration: two candidates to select among."""

    def candidates(self, previous, iteration):
        return [Architecture(1, 24), Architecture(1, 48)]


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def in_iteration_2(distiller):
    return distiller.candidates[0].name.startswith("iteration_2_")


class KillDuringTraining(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if in_iteration_2(self.model) and self.epoch == 1 and batch == 0:
            die()


def kill_during_saving():
    save = Ensemble.save

    def save_half_then_die(self, filepath, *args, **kwargs):
        save(self, filepath, *args, **kwargs)
        if len(self.members) == 2:
            with open(filepath, "r+b") as file:
                file.truncate(os.path.getsize(filepath) // 2)
            die()

    Ensemble.save = save_half_then_die


def main(directory, kill_point, output):
    data = load_images(SAMPLE)
    train = load_images(data.images[:64], data.labels[:64], classes=data.classes)
    callbacks = []
    if kill_point == "training":
        callbacks.append(KillDuringTraining())
    elif kill_point == "saving":
        kill_during_saving()
    classifier = AdaNASClassifier(
        generator=TwoWidths(),
        architecture="1@24",
        distillation="adaptive",
        mixture_weights="scalar",
        max_iterations=2,
        epochs_per_iteration=2,
        batch_size=16,
        directory=directory,
        seed=3,
        verbose=2,
    )
    classifier.fit(train.images, train.labels, callbacks=callbacks)
    test = load_images(SAMPLE, split="test")
    np.savez(
        output,
        probabilities=classifier.predict_proba(test.images[:100]),
        members=json.dumps(classifier.members_),
        history=json.dumps(classifier.history_),
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
