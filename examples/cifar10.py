"""An AdaNAS search on CIFAR-10 from a paper preset, scaled by flags.

Trains, evaluates on the test split, saves the classifier, exports a
TensorFlow SavedModel and prints a summary beside the paper's figure:

    # The paper's best CIFAR-10 configuration at 2% of its training:
    python examples/cifar10.py --preset w-akd --steps-per-iteration 20000

    # A few minutes on a CPU, on a local copy of the data:
    python examples/cifar10.py --data cifar10-dev.npz --preset smoke

    # The paper's recipe with a smaller subnetwork:
    python examples/cifar10.py --preset w-akd --architecture 2@96 --steps-per-iteration 5000

Without `--data` the images come from `keras.datasets` (a download on the
first run). `examples/cifar100.py` is the same for CIFAR-100. Add
`--strategy mirrored` to train on every local GPU (see the README).
"""

import argparse
import os
import sys
import time

from keras_adanas import AdaNASClassifier
from keras_adanas.presets import PRESETS, get_preset


def parse_args(argv, dataset):
    parser = argparse.ArgumentParser(
        description=f"AdaNAS on {dataset} from a paper preset.", allow_abbrev=False
    )
    parser.add_argument("--preset", default="smoke", choices=sorted(PRESETS))
    parser.add_argument(
        "--data", default=dataset, help=f"an .npz file or a folder (default: keras {dataset})"
    )
    parser.add_argument("--directory", help="project directory (default: runs/DATASET-PRESET)")
    parser.add_argument(
        "--architecture",
        help="the subnetwork N@F, e.g. '2@96' (the dynamic presets' first one) in place "
        "of the preset's",
    )
    parser.add_argument("--steps-per-iteration", type=int)
    parser.add_argument("--epochs-per-iteration", type=int)
    parser.add_argument("--max-iterations", type=int)
    parser.add_argument("--batch-size", type=int, help="the global batch size")
    parser.add_argument("--budget", help="max served parameters, e.g. '3.3M'")
    parser.add_argument("--strategy", help="'auto', 'default', 'mirrored' or 'multi_worker'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="start the search anew")
    return parser.parse_args(argv)


def run(dataset, argv=None):
    """Runs the example on `dataset` (`"cifar10"` or `"cifar100"`); returns
    the fitted classifier and its test metrics."""
    args = parse_args(argv, dataset)
    directory = args.directory or os.path.join("runs", f"{dataset}-{args.preset}")
    overrides = {
        name: value
        for name, value in {
            "architecture": args.architecture,
            "steps_per_iteration": args.steps_per_iteration,
            "epochs_per_iteration": args.epochs_per_iteration,
            "max_iterations": args.max_iterations,
            "batch_size": args.batch_size,
            "budget": args.budget,
            "strategy": args.strategy,
        }.items()
        if value is not None
    }
    if "epochs_per_iteration" in overrides and "steps_per_iteration" not in overrides:
        overrides["steps_per_iteration"] = None  # the presets count steps
    classifier = AdaNASClassifier.from_preset(
        args.preset,
        directory=directory,
        overwrite=args.overwrite,
        seed=args.seed,
        verbose=args.verbose,
        **overrides,
    )
    started = time.perf_counter()
    classifier.fit(args.data)
    seconds = time.perf_counter() - started
    metrics = classifier.evaluate(args.data)  # the test split
    saved = os.path.join(directory, "classifier.keras")
    classifier.save(saved)
    exported = os.path.join(directory, "saved_model")
    classifier.export(exported)

    served = sum(m["params"] for m in classifier.members_)
    served += classifier.ensemble_.mixture_weights.num_params
    print(f"\n{dataset}, preset {args.preset!r}: {len(classifier.members_)} members, ", end="")
    print(f"{served:,} served parameters, {seconds:.0f}s of search.")
    for member in classifier.members_:
        print(f"  iteration {member['iteration']}: {member['architecture']}")
    paper = get_preset(args.preset).paper_error.get(dataset)
    print(
        f"Test error {100 * (1 - metrics['accuracy']):.2f}%"
        + ("" if paper is None else f" (the paper, at full scale: {paper:.2f}%)")
        + f"; loss {metrics['loss']:.4f}."
    )
    print(f"Saved {saved!r}; exported {exported!r}.")
    return classifier, metrics


if __name__ == "__main__":
    run("cifar10", sys.argv[1:])
