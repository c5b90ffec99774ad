"""The paper's claim at small scale: an AdaNAS ensemble against one subnetwork
of about the same parameter count, on cifar10-dev.

    python benchmarks/quality.py --epochs 8 --seed 0

Runs, each with the DESIGN.md recipe, evaluated on the dev test split:
- single: one 1@192 (within 10% of three 1@96 members' parameters), trained
  `--epochs` epochs (the paper's regime: as long as each member) and
  `3 * --epochs` epochs (equal total epochs, i.e. equal compute);
- ensembles of three 1@96 members (constant generator, uniform weights), each
  member trained `--epochs` epochs, without (NOKD) and with adaptive KD (AKD).
Prints one line per run and a table; `--json` writes the results.
"""

import argparse
import json
import os
import time

import keras

from keras_adanas import AdaNASClassifier, Architecture, load_images
from keras_adanas.data import default_data_dir


def run(name, data, test, seed, **kwargs):
    keras.utils.clear_session()
    clf = AdaNASClassifier(architecture=kwargs.pop("architecture"), seed=seed, verbose=0, **kwargs)
    start = time.perf_counter()
    clf.fit(data)
    seconds = time.perf_counter() - start
    result = clf.evaluate(test)
    params = sum(m["params"] for m in clf.members_)
    row = {
        "run": name,
        "members": len(clf.members_),
        "params": params,
        "epochs_per_member": kwargs["epochs_per_iteration"],
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "seconds": seconds,
        "images_per_second": [h["images_per_second"] for h in clf.history_],
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--runs", default="single,single-3x,nokd,akd")
    args = parser.parse_args()

    train = load_images(args.data)
    test = load_images(args.data, split="test", classes=train.classes)
    member, single = Architecture.parse("1@96"), Architecture.parse("1@192")
    ratio = single.count_params(10) / (3 * member.count_params(10))
    print(f"1@192 has {ratio:.3f}x the parameters of three 1@96", flush=True)

    e = args.epochs
    runs = {
        "single": dict(architecture="1@192", max_iterations=1, epochs_per_iteration=e),
        "single-3x": dict(architecture="1@192", max_iterations=1, epochs_per_iteration=3 * e),
        "nokd": dict(architecture="1@96", max_iterations=3, epochs_per_iteration=e),
        "akd": dict(
            architecture="1@96", max_iterations=3, epochs_per_iteration=e, distillation="adaptive"
        ),
    }
    rows = [
        run(name, (train.images, train.labels), (test.images, test.labels), args.seed, **runs[name])
        for name in args.runs.split(",")
    ]
    print(f"\n{'run':<10} {'members':>7} {'params':>9} {'epochs/member':>13} {'test acc':>8}")
    for r in rows:
        print(
            f"{r['run']:<10} {r['members']:>7} {r['params']:>9,} {r['epochs_per_member']:>13} "
            f"{r['test_accuracy']:>8.4f}  ({r['seconds']:.0f}s)"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)


if __name__ == "__main__":
    main()
