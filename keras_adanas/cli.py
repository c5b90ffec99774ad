"""The `keras-adanas` command: fit, evaluate, predict, export and report.

    keras-adanas fit DATA --directory runs/c10 [--preset w-akd] [--steps-per-iteration 2000] ...
    keras-adanas evaluate MODEL DATA
    keras-adanas predict MODEL DATA --output predictions.npz
    keras-adanas export MODEL SAVED_MODEL_DIR
    keras-adanas report MODEL [--data DATA] [--plots DIR]
    keras-adanas demo [--directory runs/demo]

DATA is anything `keras_adanas.load_images` reads by name or path: an `.npz`
file, a folder of class subfolders (for `predict`, also a folder of image
files), or `cifar10`, `cifar100`, `mnist`, `fashion_mnist`, `digits`. `demo`
runs the whole job offline on `digits` (fit, report with plots, evaluate,
export, and a check of the export).
MODEL is a project directory or a `.keras` file written by
`AdaNASClassifier.save`. A bad flag or bad data is reported in one line, with
exit status 2, before anything trains or is written.
"""

import argparse
import errno
import json
import os
import sys
import time

import numpy as np

from keras_adanas.classifier import AdaNASClassifier
from keras_adanas.data import DIGITS, folder_image_files, load_images
from keras_adanas.io_utils import check_file_path, check_folder_path, save_arrays_atomically
from keras_adanas.presets import PRESETS
from keras_adanas.project import PLOTS_FOLDER, ProjectInUseError
from keras_adanas.reporting import format_history, write_report_plots


def _auto_on_off(text):
    choices = {"auto": "auto", "on": True, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from auto, on, off)")
    return choices[text]


# Classifier arguments settable from the command line: (flag, type, help).
_CLASSIFIER_FLAGS = [
    ("budget", str, "max served parameters: an int or '33M', '3.3M', '500k'"),
    ("generator", str, "'constant' or 'dynamic'"),
    ("architecture", str, "N@F of the (first) candidates, e.g. '6@768'"),
    ("distillation", str, "'none', 'born_again' or 'adaptive'"),
    ("kd_temperature", float, "distillation temperature"),
    ("kd_weight", float, "weight of the distillation term"),
    ("mixture_weights", str, "'uniform', 'scalar' or 'vector'"),
    ("mixture_fit", str, "'training', 'inference' or 'refit': how learned weights are fitted"),
    ("max_iterations", int, "most iterations to run"),
    ("epochs_per_iteration", int, "epochs each iteration trains"),
    ("steps_per_iteration", int, "steps each iteration trains"),
    ("time_limit", str, "wall time of the search: seconds or '90s', '10m', '2h'"),
    ("batch_size", int, "global batch size"),
    ("recipe", str, "'auto' (fitted to the run) or 'paper'"),
    ("learning_rate", float, "learning rate at batch size 32 (default: the recipe's)"),
    ("cutout_size", int, "the cutout's side in pixels, 0 for none (default: the recipe's)"),
    ("drop_path_keep_prob", float, "drop-path keep probability, 1 for none"),
    ("auxiliary_weight", float, "the auxiliary head's loss weight"),
    ("label_smoothing", float, "label smoothing"),
    ("weight_decay", float, "the kernels' L2 decay (default: the recipe's)"),
    ("warmup", float, "fraction of each member's steps of learning-rate warm-up"),
    ("strategy", str, "'auto', 'default', 'mirrored' or 'multi_worker' (TF_CONFIG)"),
    (
        "synchronized_batch_norm",
        _auto_on_off,
        "'auto', 'on' or 'off': batch norm over the whole batch across replicas",
    ),
    ("dtype_policy", str, "'float32', 'mixed_float16' (GPU) or 'mixed_bfloat16'"),
    ("seed", int, "seed for a repeatable search"),
    ("verbose", int, "0, 1 or 2"),
]


# Classifier arguments set by a flag alone: (flag, argument, action, help).
_SWITCHES = [
    ("--augment", "augment", "store_true", "train with the CIFAR augmentation"),
    ("--no-augment", "augment", "store_false", "train without the CIFAR augmentation"),
    (
        "--recompute-statistics",
        "recompute_statistics",
        "store_true",
        "recompute batch-norm statistics after each member trains",
    ),
    ("--tensorboard", "tensorboard", "store_true", "write TensorBoard logs to DIRECTORY/logs"),
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
    for flag, dest, action, text in _SWITCHES:
        fit.add_argument(flag, dest=dest, action=action, default=argparse.SUPPRESS, help=text)
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
        "--output",
        required=True,
        help="an .npz file to write `labels` and `probabilities` to (and, for a "
        "folder, `files`: each row's image path within it)",
    )

    export = commands.add_parser("export", help="write a TensorFlow SavedModel", allow_abbrev=False)
    export.add_argument("model", help="a project directory or a saved .keras classifier")
    export.add_argument("path", help="the SavedModel folder to write")

    report = commands.add_parser(
        "report", help="print what each iteration did and draw plots", allow_abbrev=False
    )
    report.add_argument("model", help="a project directory or a saved .keras classifier")
    report.add_argument("--data", help="labelled data for the error per iteration (its test split)")
    report.add_argument(
        "--plots",
        help="folder for the PNG plots (default: MODEL/plots for a project directory; "
        "a .keras file draws none without it)",
    )
    demo = commands.add_parser(
        "demo",
        help="the whole job offline on scikit-learn's digits, in minutes on a CPU",
        allow_abbrev=False,
    )
    demo.add_argument("--directory", default="runs/demo", help="the project directory")
    demo.add_argument(
        "--overwrite", action="store_true", help="discard what --directory holds and start anew"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed for a repeatable search")
    for name in ("max_iterations", "epochs_per_iteration"):
        demo.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=int,
            default=argparse.SUPPRESS,
            help="override the demo preset's " + name.replace("_", " "),
        )
    return parser


# What a command reports in one line (exit status 2): bad input, files and
# disks (`OSError`: a read-only or full disk, a name too long, a missing
# network), memory, a missing package, and a project another search holds.
ANTICIPATED_ERRORS = (
    ValueError,
    TypeError,
    OSError,
    MemoryError,
    ImportError,
    ProjectInUseError,
)
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report it


def main(argv=None):
    """Runs the command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ANTICIPATED_ERRORS as error:
        print(f"keras-adanas {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " Run the same command again to resume." if args.command == "fit" else ""
        print(f"keras-adanas {args.command}: interrupted.{hint}", file=sys.stderr)
        return INTERRUPTED_STATUS


def _one_line(error):
    """The error's message on one line; an `OSError` says what it is."""
    if isinstance(error, OSError) and error.strerror:
        message = error.strerror
        if error.errno == errno.ENOSPC and message == os.strerror(errno.ENOSPC):
            message = f"the disk is full ({message})"
        if error.filename:
            message += f": {error.filename!r}"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


def _fit(args):
    overrides = {
        name: getattr(args, name)
        for name in [n for n, _, _ in _CLASSIFIER_FLAGS] + [d for _, d, _, _ in _SWITCHES]
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
    check_file_path(args.output, "--output")  # before the work, not after
    classifier = _load(args.model)
    probabilities = classifier.predict_proba(args.data)
    labels = classifier.classes_[np.argmax(probabilities, axis=1)]
    arrays = {"labels": labels, "probabilities": probabilities}
    if os.path.isdir(args.data):
        # Row i of the predictions is the i-th file `load_images` read; the
        # paths, relative to DATA, say which photo each row belongs to.
        files, _ = folder_image_files(args.data)
        arrays["files"] = np.asarray([os.path.relpath(f, args.data) for f in files])
    save_arrays_atomically(args.output, **arrays)
    print(f"Wrote {len(labels)} predictions to {args.output!r}.")
    return 0


def _export(args):
    from keras_adanas.serving import check_export_path

    check_export_path(args.path)  # before the model loads
    _load(args.model).export(args.path)
    print(f"Wrote the SavedModel to {args.path!r}.")
    return 0


def _report(args):
    folder = args.plots
    if folder is None and os.path.isdir(args.model):
        folder = os.path.join(args.model, PLOTS_FOLDER)
        if os.path.islink(folder):
            raise ValueError(
                f"{folder!r} is a symbolic link: the project's plots are drawn inside "
                "the project only. Pass `--plots DIR` to draw them elsewhere."
            )
    if folder is not None:
        check_folder_path(folder, "--plots")
    if folder is None and args.data is not None:
        raise ValueError(
            "`--data` is for the errors plot of a .keras file: pass `--plots DIR` too. "
            f"Received: --data={args.data!r} without --plots"
        )
    classifier = _load(args.model)
    print(format_history(classifier.history_))
    _print_members(classifier)
    if folder is None:
        return 0
    written = write_report_plots(classifier, folder, data=args.data)
    if written["errors"] is not None:
        _print_errors(written["errors"])
    for path in written["paths"]:
        print(f"Wrote {path}")
    return 0


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


def _demo(args):
    started = time.perf_counter()
    overrides = {
        name: getattr(args, name)
        for name in ("max_iterations", "epochs_per_iteration")
        if hasattr(args, name)
    }
    classifier = AdaNASClassifier.from_preset(
        "demo", directory=args.directory, overwrite=args.overwrite, seed=args.seed, **overrides
    )
    print(
        "Demo: an AdaNAS search on scikit-learn's handwritten digits (1,437 training "
        f"and 360 test images, 16x16), written to {args.directory!r}.",
        flush=True,
    )
    classifier.fit(DIGITS)
    print()
    print(format_history(classifier.history_))
    _print_members(classifier)
    written = write_report_plots(
        classifier, os.path.join(args.directory, PLOTS_FOLDER), data=DIGITS
    )
    _print_errors(written["errors"])
    metrics = classifier.evaluate(DIGITS)
    print(f"Test accuracy {metrics['accuracy']:.2%}, loss {metrics['loss']:.4f}.")
    saved_model = os.path.join(args.directory, "saved_model")
    classifier.export(saved_model)
    served = _serve(saved_model, load_images(DIGITS, split="test").images)
    gap = float(np.abs(served - classifier.predict_proba(DIGITS)).max())
    print(f"Exported a SavedModel to {saved_model!r}; its probabilities differ by {gap:.1e}.")
    for path in written["paths"]:
        print(f"Plot: {path}")
    print(f"Done in {time.perf_counter() - started:.0f}s.")
    return 0


def _print_errors(errors):
    """The lines of `reporting.iteration_errors`, one per iteration."""
    for iteration, ensemble, best in zip(
        errors["iteration"], errors["ensemble_error"], errors["best_member_error"], strict=True
    ):
        print(
            f"  after iteration {iteration}: test error {ensemble:.2%} "
            f"(best single member so far {best:.2%})"
        )


def _serve(saved_model, images):
    """Probabilities from the exported SavedModel's `serve` endpoint."""
    import tensorflow as tf

    model = tf.saved_model.load(saved_model)  # Kept alive while `serve` runs.
    return model.serve(images).numpy()


_COMMANDS = {
    "fit": _fit,
    "evaluate": _evaluate,
    "predict": _predict,
    "export": _export,
    "report": _report,
    "demo": _demo,
}


if __name__ == "__main__":
    sys.exit(main())
