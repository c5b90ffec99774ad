"""The `keras-adanas` command: fit, evaluate, predict, export and report.

    keras-adanas fit DATA --directory runs/c10 [--preset w-akd] [--steps-per-iteration 2000] ...
    keras-adanas evaluate MODEL DATA
    keras-adanas predict MODEL DATA --output predictions.npz
    keras-adanas export MODEL SAVED_MODEL_DIR
    keras-adanas report MODEL

DATA is anything `keras_adanas.load_images` reads by name or path: an `.npz`
file, a folder of class subfolders, or `cifar10`, `cifar100`, `mnist`,
`fashion_mnist`. MODEL is a project directory or a `.keras` file written by
`AdaNASClassifier.save`. A bad flag or bad data is reported in one line, with
exit status 2, before anything trains or is written.
"""

import argparse
import json
import sys

import numpy as np

from keras_adanas.classifier import AdaNASClassifier
from keras_adanas.io_utils import save_arrays_atomically
from keras_adanas.presets import PRESETS

# Classifier arguments settable from the command line: (flag, type, help).
_CLASSIFIER_FLAGS = [
    ("budget", str, "max served parameters: an int or '33M', '3.3M', '500k'"),
    ("generator", str, "'constant' or 'dynamic'"),
    ("architecture", str, "N@F of the (first) candidates, e.g. '6@768'"),
    ("distillation", str, "'none', 'born_again' or 'adaptive'"),
    ("kd_temperature", float, "distillation temperature"),
    ("kd_weight", float, "weight of the distillation term"),
    ("mixture_weights", str, "'uniform', 'scalar' or 'vector'"),
    ("max_iterations", int, "most iterations to run"),
    ("epochs_per_iteration", int, "epochs each iteration trains"),
    ("steps_per_iteration", int, "steps each iteration trains"),
    ("batch_size", int, "global batch size"),
    ("learning_rate", float, "learning rate at batch size 32"),
    ("seed", int, "seed for a repeatable search"),
    ("verbose", int, "0, 1 or 2"),
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-adanas",
        description="AdaNAS: grow an ensemble of NASNet-A subnetworks under a budget.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="run (or resume) a search", allow_abbrev=False)
    fit.add_argument("data", help="training data: a path or a dataset name")
    fit.add_argument("--directory", required=True, help="the project directory")
    fit.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a paper configuration; other flags override it",
    )
    fit.add_argument("--validation-data", help="selection data (default: the training data)")
    fit.add_argument(
        "--overwrite", action="store_true", help="discard what --directory holds and start anew"
    )
    fit.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        default=argparse.SUPPRESS,
        help="train without the CIFAR augmentation",
    )
    for name, kind, text in _CLASSIFIER_FLAGS:
        fit.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=argparse.SUPPRESS,
            help=text,
        )

    evaluate = commands.add_parser(
        "evaluate", help="loss and accuracy on labelled data", allow_abbrev=False
    )
    evaluate.add_argument("model", help="a project directory or a saved .keras classifier")
    evaluate.add_argument("data", help="labelled data (its test split, if it has splits)")

    predict = commands.add_parser("predict", help="labels and probabilities", allow_abbrev=False)
    predict.add_argument("model", help="a project directory or a saved .keras classifier")
    predict.add_argument("data", help="images (their test split, if they have splits)")
    predict.add_argument(
        "--output", required=True, help="an .npz file to write `labels` and `probabilities` to"
    )

    export = commands.add_parser("export", help="write a TensorFlow SavedModel", allow_abbrev=False)
    export.add_argument("model", help="a project directory or a saved .keras classifier")
    export.add_argument("path", help="the SavedModel folder to write")

    report = commands.add_parser("report", help="print what each iteration did", allow_abbrev=False)
    report.add_argument("model", help="a project directory or a saved .keras classifier")
    return parser


def main(argv=None):
    """Runs the command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, MemoryError) as error:
        print(f"keras-adanas {args.command}: error: {error}", file=sys.stderr)
        return 2


def _fit(args):
    overrides = {
        name: getattr(args, name)
        for name in [n for n, _, _ in _CLASSIFIER_FLAGS] + ["augment"]
        if hasattr(args, name)
    }
    overrides.update(directory=args.directory, overwrite=args.overwrite)
    if args.preset:
        classifier = AdaNASClassifier.from_preset(args.preset, **overrides)
    else:
        classifier = AdaNASClassifier(**overrides)
    classifier.fit(args.data, validation_data=args.validation_data)
    _print_members(classifier)
    print(f"Stopped: {classifier.stop_reason_}. The ensemble is in {args.directory!r}.")
    return 0


def _load(path):
    return AdaNASClassifier.load(path)


def _evaluate(args):
    metrics = _load(args.model).evaluate(args.data)
    print(json.dumps(metrics))
    return 0


def _predict(args):
    if not args.output.endswith(".npz"):
        raise ValueError(f"`--output` must end in '.npz'. Received: --output={args.output!r}")
    classifier = _load(args.model)
    probabilities = classifier.predict_proba(args.data)
    labels = classifier.classes_[np.argmax(probabilities, axis=1)]
    save_arrays_atomically(args.output, labels=labels, probabilities=probabilities)
    print(f"Wrote {len(labels)} predictions to {args.output!r}.")
    return 0


def _export(args):
    _load(args.model).export(args.path)
    print(f"Wrote the SavedModel to {args.path!r}.")
    return 0


def _report(args):
    classifier = _load(args.model)
    print(format_history(classifier.history_))
    _print_members(classifier)
    return 0


def format_history(history):
    """A text table, one row per candidate of every iteration."""
    header = (
        f"{'iter':>4}  {'candidate':<10} {'train loss':>10} {'selection':>10}  "
        f"{'chosen':<6} {'steps':>7} {'batch':>5} {'seconds':>8} {'images/s':>8}"
    )
    rows = [header, "-" * len(header)]
    for report in history:
        speed = report.get("images_per_second")
        for j, candidate in enumerate(report["candidates"]):
            chosen = "yes" if report["chosen"] == j else ""
            if candidate.get("diverged"):
                chosen = "NaN"
            rows.append(
                f"{report['iteration']:>4}  {candidate['architecture']:<10} "
                f"{_number(candidate['train_loss']):>10} "
                f"{_number(candidate['selection_loss']):>10}  {chosen:<6} "
                f"{report['steps']:>7} {report.get('batch_size', ''):>5} "
                f"{report['seconds']:>8.1f} {_number(speed, 0):>8}"
            )
    return "\n".join(rows)


def _number(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def _print_members(classifier):
    served = sum(m["params"] for m in classifier.members_)
    served += classifier.ensemble_.mixture_weights.num_params
    print(f"{len(classifier.members_)} members, {served:,} served parameters:")
    for member in classifier.members_:
        weight = np.round(np.asarray(member["weight"], dtype=float), 4).tolist()
        print(
            f"  iteration {member['iteration']}: {member['architecture']} "
            f"({member['params']:,} parameters), weight {weight}"
        )


_COMMANDS = {
    "fit": _fit,
    "evaluate": _evaluate,
    "predict": _predict,
    "export": _export,
    "report": _report,
}


if __name__ == "__main__":
    sys.exit(main())
