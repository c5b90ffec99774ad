"""How learned mixture weights should be fitted: test error with them against
uniform weights, after every iteration, over seeds.

    python benchmarks/mixture_fit.py --datasets digits,cifar10 --seeds 0,1,2 \
        --fits training,inference,refit --json mixture_fit.jsonl

For each dataset, fit (`AdaNASClassifier(mixture_fit=...)`) and seed it runs
one search and prints, after each iteration, the test error of the ensemble
with the mixture weights it learned and with uniform weights (the mean of the
members' logits), then a summary: the mean and spread over seeds, and in how
many searches the learned weights did no worse than uniform ones.

- `digits`: the demo's search (`keras-adanas demo`: the dynamic generator from
  1@24, adaptive distillation, scalar weights, 3 iterations of 3 epochs at
  batch 64, no augmentation) on scikit-learn's digits, tested on their 360
  test images.
- `cifar10`: three 1@48 members, adaptive distillation, scalar weights, 3
  epochs each at batch 32, on `cifar10-dev.npz` (`--data`), tested on its
  2,000 test images.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

from keras_adanas import AdaNASClassifier, load_images
from keras_adanas.data import default_data_dir
from keras_adanas.reporting import members_logits


def searches(data_path):
    return {
        "digits": (
            "digits",
            dict(preset="demo"),
        ),
        "cifar10": (
            data_path,
            dict(
                architecture="1@48",
                distillation="adaptive",
                mixture_weights="scalar",
                max_iterations=3,
                epochs_per_iteration=3,
            ),
        ),
    }


def errors_after_each_iteration(classifier, test):
    """`(learned, uniform)` test errors (%) after each iteration."""
    logits = members_logits(classifier.ensemble_.members, test)
    learned, uniform = [], []
    for count, report in enumerate(
        [r for r in classifier.history_ if r["chosen"] is not None], start=1
    ):
        weights = np.asarray(report["mixture_weights"], "float64")
        first = logits[:count]
        mixed = sum(
            (w if np.ndim(w) == 0 else np.asarray(w)[None, :]) * member
            for w, member in zip(weights, first, strict=True)
        )
        learned.append(100.0 * np.mean(np.argmax(mixed, 1) != test.labels))
        uniform.append(100.0 * np.mean(np.argmax(np.mean(first, 0), 1) != test.labels))
    return learned, uniform


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,cifar10")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fits", default="training,inference,refit")
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--json", help="append one JSON line per search to this file")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets.split(","):
        source, arguments = searches(args.data)[dataset]
        test = load_images(source, split="test")
        for fit in args.fits.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                started = time.perf_counter()
                settings = dict(mixture_fit=fit, seed=seed, verbose=0)
                if "preset" in arguments:
                    classifier = AdaNASClassifier.from_preset(arguments["preset"], **settings)
                else:
                    classifier = AdaNASClassifier(**arguments, **settings)
                classifier.fit(source)
                learned, uniform = errors_after_each_iteration(classifier, test)
                row = {
                    "dataset": dataset,
                    "fit": fit,
                    "seed": seed,
                    "learned": learned,
                    "uniform": uniform,
                    "weights": [m["weight"] for m in classifier.members_],
                    "seconds": time.perf_counter() - started,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    with open(args.json, "a") as file:
                        file.write(json.dumps(row) + "\n")
    print("\ndataset  fit        iteration  learned (mean, spread)  uniform   no worse")
    for dataset in args.datasets.split(","):
        for fit in args.fits.split(","):
            runs = [r for r in rows if r["dataset"] == dataset and r["fit"] == fit]
            for i in range(len(runs[0]["learned"])):
                learned = [r["learned"][i] for r in runs]
                uniform = [r["uniform"][i] for r in runs]
                wins = sum(a <= b for a, b in zip(learned, uniform, strict=True))
                print(
                    f"{dataset:8} {fit:10} {i + 1:9}  {statistics.mean(learned):6.2f} "
                    f"({max(learned) - min(learned):5.2f})          "
                    f"{statistics.mean(uniform):6.2f}    {wins}/{len(runs)}"
                )


if __name__ == "__main__":
    main()
