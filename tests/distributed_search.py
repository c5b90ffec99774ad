"""A small AdaNAS search under a distribution strategy, for tests/test_distribute.py.

    python tests/distributed_search.py MODE OUTPUT.json [DIRECTORY]
    python tests/distributed_search.py single OUTPUT.json

A search is a one-iteration search of two candidates (1@24 and 1@48) on
1,024 of scikit-learn's digits (16x16, 6 epochs at batch 64): long enough to
learn them (about 0.9 test accuracy), so that a distributed search that
trains badly fails the comparison. (On 384 CIFAR images for 3 epochs, every
search stayed near chance.) What it chose, its losses and its accuracy on
the 360 test digits go to OUTPUT.json.

MODE `worker` runs one on one worker of the cluster `TF_CONFIG` describes,
with `strategy="auto"` (MultiWorkerMirroredStrategy over the two workers).

MODE `local` (one process, to start TensorFlow once) writes these results
to OUTPUT.json, under these keys:

- `step`: one iteration-2 `Distiller` (one candidate, a frozen member as the
  adaptive-distillation teacher, scalar mixture weights) trained for one
  step on the same batch without a strategy and under MirroredStrategy over
  two logical CPUs, and the largest differences. The batch is one half
  repeated, so both replicas see the single run's batch statistics and the
  two steps should agree to rounding.
- `drop_path_masks`: the masks one `DropPath` layer draws on each of the two
  replicas in one training call.
- `batch_norm`: the outputs, on each replica, of one batch normalization in
  training on a batch split over the two replicas, with and without
  `synchronized_batch_norm`.
- `mirrored`: MirroredStrategy's replicas, and its refusal of a batch the
  replicas cannot share evenly. Its search is not run: the workers' search
  runs the same two replicas' arithmetic, whose step `step` pins to a
  single device's, and each search under a strategy takes minutes here.

MODE `single`, a search without a strategy, is not run by the tests: its
figures, measured, are the reference test_distribute.py holds the
distributed search to.
"""

import functools
import json
import os
import sys
import time

MODE, OUTPUT = sys.argv[1], sys.argv[2]
DIRECTORY = sys.argv[3] if len(sys.argv) > 3 else None

import tensorflow as tf  # noqa: E402

if MODE == "local":
    # Before TensorFlow initializes its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from keras_adanas import AdaNASClassifier, Architecture, load_images  # noqa: E402
from keras_adanas.data import digits_images  # noqa: E402
from keras_adanas.distillation import Distillation  # noqa: E402
from keras_adanas.ensemble import MixtureWeights  # noqa: E402
from keras_adanas.nasnet import DropPath, FusedBatchNormalization  # noqa: E402
from keras_adanas.nasnet.batch_norm import synchronized_batch_norm  # noqa: E402
from keras_adanas.search import Distiller, GroupedClippingSGD, build_candidates  # noqa: E402

# The CIFAR-10 sample committed with the tests.
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cifar10-sample.npz")


class TwoWidths:
    """Proposes 1@24 and 1@48 every iteration."""

    def candidates(self, previous, iteration):
        return [Architecture(1, 24), Architecture(1, 48)]


def one_step(strategy, images, labels):
    """Trains an iteration-2 Distiller one step; returns losses and weights."""
    with strategy.scope():
        (member,) = build_candidates([Architecture(1, 24)], 10, (32, 32, 3), 1, seed=5)
        member = member.without_auxiliary_head(name="member_1")
        previous = MixtureWeights("scalar", 1, 10, name="previous")
        previous.build([(None, 10)])
        candidates = build_candidates([Architecture(1, 24)], 10, (32, 32, 3), 2, seed=5)
        distiller = Distiller(
            candidates,
            members=[member],
            previous_mixture=previous,
            mixture_kind="scalar",
            distillation=Distillation("adaptive"),
        )
        optimizer = GroupedClippingSGD(distiller.variable_groups(), learning_rate=0.1, momentum=0.9)
        distiller.compile(optimizer=optimizer)
        initial = [v.numpy() for v in distiller.trainable_variables]
        logs = distiller.fit(images, labels, batch_size=len(images), verbose=0, shuffle=False)
        trained = [v.numpy() for v in distiller.trainable_variables]
        paths = [v.path for v in distiller.trainable_variables]
    updates = dict(zip(paths, [a - b for a, b in zip(trained, initial, strict=True)], strict=True))
    return {k: v[0] for k, v in logs.history.items()}, updates


def compare_one_step():
    data = load_images(SAMPLE)
    images = np.concatenate([data.images[:32]] * 2).astype("float32")
    labels = np.concatenate([data.labels[:32]] * 2)
    single_logs, single_updates = one_step(tf.distribute.get_strategy(), images, labels)
    mirrored_logs, mirrored_updates = one_step(mirrored_strategy(), images, labels)
    return {
        "single_logs": single_logs,
        "mirrored_logs": mirrored_logs,
        "variables": len(single_updates),
        "update_differences": {
            path: float(np.abs(update - mirrored_updates[path]).max())
            for path, update in single_updates.items()
        },
        "max_update": max(float(np.abs(u).max()) for u in single_updates.values()),
    }


@functools.cache
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole process.
    (With a second one, the search after the step failed: "Shape mismatch in
    the collective instance 100", a key the step's strategy had used.)"""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def replica_results(strategy, values):
    return [v.numpy().ravel().tolist() for v in strategy.experimental_local_results(values)]


def drop_path_masks():
    """Each replica's masks of one DropPath call on 16 ones (keep 0.5)."""
    strategy = mirrored_strategy()
    with strategy.scope():
        layer = DropPath(cell_index=2, num_cells=1, keep_prob=0.5, total_steps=1, seed=3)
        layer.build((None, 1, 1, 1))
        layer.step.assign(1.0)  # the schedule's end: keep probability 0.5
    ones = tf.ones((16, 1, 1, 1))
    return replica_results(strategy, strategy.run(lambda: layer(ones, training=True)))


def batch_norm_outputs():
    """Replica 0 holds [0, 2], replica 1 [4, 6]: each replica's outputs."""
    strategy = mirrored_strategy()
    with strategy.scope():
        layer = FusedBatchNormalization(epsilon=0.0)
        layer.build((None, 1, 1, 1))

    def share(context):
        return tf.constant([0.0, 2.0])[:, None, None, None] + 4.0 * tf.cast(
            context.replica_id_in_sync_group, tf.float32
        )

    values = strategy.experimental_distribute_values_from_function(share)
    outputs = {}
    for synchronized in (False, True):
        with synchronized_batch_norm([layer], enabled=synchronized):
            result = strategy.run(lambda x: layer(x, training=True), args=(values,))
        outputs["synchronized" if synchronized else "own"] = replica_results(strategy, result)
    outputs["synchronized_after"] = layer.synchronized
    return outputs


def classifier_of(strategy, **settings):
    """The search's `AdaNASClassifier` under `strategy`, with `settings`
    changed."""
    search_settings = dict(
        generator=TwoWidths(),
        distillation="adaptive",
        mixture_weights="scalar",
        max_iterations=1,
        epochs_per_iteration=6,
        batch_size=64,
        recipe="paper",  # the figures in test_distribute.py are of its recipe
        learning_rate=0.05,
        augment=False,
        seed=7,
        strategy=strategy,
        directory=DIRECTORY,
        verbose=0,
    )
    return AdaNASClassifier(**{**search_settings, **settings})


def mirrored_replicas():
    """MirroredStrategy's replicas, and what `fit` says of a batch of 33."""
    strategy = mirrored_strategy()
    images, labels = digits_images()
    try:
        classifier_of(strategy, batch_size=33).fit(images[:64], labels[:64])
    except ValueError as error:
        uneven_batch_error = str(error)
    else:
        uneven_batch_error = None
    return {"replicas": strategy.num_replicas_in_sync, "uneven_batch_error": uneven_batch_error}


def search(mode):
    """Runs the search of `mode` (`single` or `worker`)."""
    strategy = {"single": "default", "worker": "auto"}[mode]
    images, labels = digits_images()
    test_images, test_labels = digits_images("test")
    classifier = classifier_of(strategy)
    start = time.perf_counter()
    classifier.fit(images[:1024], labels[:1024])
    seconds = time.perf_counter() - start
    return {
        "architectures": [m["architecture"] for m in classifier.members_],
        "selection_losses": [
            [c["selection_loss"] for c in h["candidates"]] for h in classifier.history_
        ],
        "train_losses": [[c["train_loss"] for c in h["candidates"]] for h in classifier.history_],
        "weights": [m["weight"] for m in classifier.members_],
        "accuracy": classifier.score(test_images, test_labels),
        "seconds": seconds,
    }


def main():
    if MODE == "local":
        result = {
            "step": compare_one_step(),
            "drop_path_masks": drop_path_masks(),
            "batch_norm": batch_norm_outputs(),
            "mirrored": mirrored_replicas(),
        }
    else:
        result = search(MODE)
    with open(OUTPUT, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
