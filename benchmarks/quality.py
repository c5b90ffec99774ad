"""The paper's claim at small scale: AdaNAS ensembles against one subnetwork
of about the same parameter count, on cifar10-dev, over several seeds; and
with `--time-limit`, what a search hands back for a wall-clock budget against
what a user would otherwise train in the same time.

    python benchmarks/quality.py --epochs 8 --seeds 0,1,2 --json quality.jsonl
    python benchmarks/quality.py --time-limit 600 --seeds 0,1,2 --json quality.jsonl

With `--time-limit SECONDS`, the runs (`--runs`, by default all three) each
get the same wall time once the data is loaded:
- `search`: `AdaNASClassifier(time_limit=SECONDS, seed=seed)`, nothing else
  given (`--architecture N@F` names its members, `--max-iterations K`
  caps how many it grows);
- `tower`: one NASNet-A of the search's served parameter count (the `N@F`
  with its first member's N whose count is nearest), `max_iterations=1`,
  the same time limit and the default recipe; when the search's ensemble is
  one member, the tower is that member and the search's row stands for it;
- `cnn`: the plain Keras CNN of `plain_cnn.py`, trained to the time limit.

`--learning-rate` and `--no-augment` change the recipe of every run, to test
whether the gap between the ensembles and the single network depends on them.

Runs, each with the DESIGN.md recipe, evaluated on the dev test split:
- `single`: one network of about three members' parameters (`--single`,
  by default the `N@F` with the member's N whose count is nearest), trained
  `--epochs` epochs: the paper's regime, every network trained as long;
- `single-3x`: the same network trained `3 * --epochs` epochs: as many
  epochs in all as the ensembles' three members together;
- `nokd`: three `--member` members (constant generator, uniform weights),
  each trained `--epochs` epochs, no distillation;
- `akd`: the same with adaptive distillation;
- `scalar-akd`: adaptive distillation and learned scalar mixture weights;
- `dynamic`: the dynamic generator from half the member's width, growing by
  half its width, adaptive distillation, scalar weights, under the single
  network's parameter count as budget (two candidates a step, so about twice
  the training time of the others).
Each run prints a JSON line (with the ensemble's test error after each
iteration and each member's error alone, to see where an ensemble loses; how
often two members disagree on a test image; and the errors once each
member's batch-normalization statistics are recomputed on the training
images, to see whether the moving averages cost accuracy),
appended to `--json` as it finishes, so an interrupted benchmark keeps what
it measured. At the end a table gives each run's test accuracy mean and
spread (sample standard deviation) over the seeds, the parameter count and
the wall time of `fit`.
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np
from plain_cnn import test_accuracy, train_to_time_limit

from keras_adanas import AdaNASClassifier, Architecture, load_images
from keras_adanas.data import default_data_dir
from keras_adanas.generators import DynamicGenerator
from keras_adanas.nasnet import recompute_batch_statistics
from keras_adanas.reporting import iteration_errors

RUNS = ("single", "single-3x", "nokd", "akd", "scalar-akd", "dynamic")
TIMED_RUNS = ("search", "tower", "cnn")
MEMBERS = 3


def nearest_single(member, num_classes):
    """The `N@F` with `member`'s N whose parameter count is nearest to
    `MEMBERS` members'."""
    return tower_for(MEMBERS * member.count_params(num_classes), member.depth, num_classes)


def run_settings(name, member, single, epochs, num_classes):
    """The `AdaNASClassifier` arguments of run `name`."""
    ensemble = dict(architecture=member, max_iterations=MEMBERS, epochs_per_iteration=epochs)
    if name == "single":
        return dict(architecture=single, max_iterations=1, epochs_per_iteration=epochs)
    if name == "single-3x":
        return dict(architecture=single, max_iterations=1, epochs_per_iteration=MEMBERS * epochs)
    if name == "nokd":
        return ensemble
    if name == "akd":
        return dict(ensemble, distillation="adaptive")
    if name == "scalar-akd":
        return dict(ensemble, distillation="adaptive", mixture_weights="scalar")
    if name == "dynamic":
        half = Architecture(member.depth, member.filters // 2)
        return dict(
            ensemble,
            generator=DynamicGenerator(half, width_step=half.filters),
            budget=single.count_params(num_classes),
            distillation="adaptive",
            mixture_weights="scalar",
        )
    raise ValueError(f"`--runs` names runs among {RUNS}. Received: {name!r}")


def logits_of(models, images):
    """Each model's logits on `images`, float64."""
    return [np.asarray(m.predict(images, batch_size=250, verbose=0), "float64") for m in models]


def mean_disagreement(member_logits):
    """The fraction of images two members label differently, averaged over
    pairs of members (None for one member): how diverse the members are."""
    labels = [np.argmax(logits, axis=1) for logits in member_logits]
    pairs = [
        np.mean(labels[i] != labels[j])
        for i in range(len(labels))
        for j in range(i + 1, len(labels))
    ]
    return float(np.mean(pairs)) if pairs else None


def with_recomputed_statistics(member, images, batch_size=250, seed=0):
    """A copy of `member` whose batch-normalization moving statistics are
    recomputed on `images`, in a shuffled order (see
    `recompute_batch_statistics`): if its error changes much, the moving
    statistics training left were off."""
    copy = keras.models.clone_model(member)
    copy.set_weights(member.get_weights())
    order = np.random.default_rng(seed).permutation(len(images))
    return recompute_batch_statistics(copy, images[order], batch_size=batch_size)


def diagnostics(classifier, train, test):
    """Where an ensemble loses: its members' diversity, and its errors with
    batch-normalization statistics recomputed on the training images."""
    members = classifier.ensemble_.members
    last = [report for report in classifier.history_ if report["chosen"] is not None][-1]
    weights = np.asarray(last["mixture_weights"], "float64")
    recomputed = logits_of(
        [with_recomputed_statistics(m, train.images) for m in members], test.images
    )
    mixed = sum(
        (w * logits if np.ndim(w) == 0 else logits * w[None, :])
        for w, logits in zip(weights, recomputed, strict=True)
    )
    return {
        "member_disagreement": mean_disagreement(logits_of(members, test.images)),
        "member_error_recomputed_bn": [error(logits, test.labels) for logits in recomputed],
        "ensemble_error_recomputed_bn": error(mixed, test.labels),
    }


def error(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) != labels))


def run(name, settings, train, test, seed, **recipe):
    keras.utils.clear_session()
    classifier = AdaNASClassifier(seed=seed, verbose=0, **settings, **recipe)
    start = time.perf_counter()
    classifier.fit((train.images, train.labels))
    seconds = time.perf_counter() - start
    result = classifier.evaluate((test.images, test.labels))
    errors = iteration_errors(classifier, (test.images, test.labels))
    return {
        "run": name,
        "seed": seed,
        "members": [m["architecture"] for m in classifier.members_],
        "params": sum(m["params"] for m in classifier.members_),
        "epochs_per_member": settings["epochs_per_iteration"],
        "learning_rate": classifier.learning_rate,
        "augment": classifier.augment,
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        # Where an ensemble loses: its error as it grew against its members'.
        "ensemble_error_by_iteration": errors["ensemble_error"],
        "member_error": errors["member_error"],
        **diagnostics(classifier, train, test),
        "seconds": seconds,
        "images_per_second": [h["images_per_second"] for h in classifier.history_],
    }


def tower_for(params, depth, num_classes):
    """The `depth@F` whose parameter count is nearest to `params`."""
    widths = range(24, 64 * 24 + 1, 24)
    return min(
        (Architecture(depth, f) for f in widths),
        key=lambda a: abs(a.count_params(num_classes) - params),
    )


def timed_search(name, settings, train, test, seed):
    """A row for a search of `settings` (a time limit among them)."""
    keras.utils.clear_session()
    classifier = AdaNASClassifier(seed=seed, verbose=0, **settings)
    start = time.perf_counter()
    classifier.fit((train.images, train.labels))
    seconds = time.perf_counter() - start
    return {
        "run": name,
        "seed": seed,
        "time_limit": settings["time_limit"],
        "max_iterations": settings.get("max_iterations"),
        "members": [m["architecture"] for m in classifier.members_],
        "params": sum(m["params"] for m in classifier.members_),
        "epochs_per_member": [
            round(h["steps"] * h["batch_size"] / len(train), 2) for h in classifier.history_
        ],
        "test_accuracy": classifier.score(test.images, test.labels),
        "seconds": seconds,
        "plans": [h["plan"] for h in classifier.history_],
        "stop_reason": classifier.stop_reason_,
    }


def timed_runs(names, time_limit, train, test, seed, architecture=None, max_iterations=None):
    """The rows of `names` (among `TIMED_RUNS`) for one seed, in turn."""
    rows = []
    search = None
    if "search" in names or "tower" in names:
        settings = {"time_limit": time_limit, "architecture": architecture}
        if max_iterations is not None:
            settings["max_iterations"] = max_iterations
        search = timed_search("search", settings, train, test, seed)
        if "search" in names:
            rows.append(search)
    if "tower" in names:
        first = Architecture.parse(search["members"][0])
        tower = tower_for(search["params"], first.depth, train.num_classes)
        if len(search["members"]) == 1 and tower == first:
            rows.append(dict(search, run="tower", same_as="search"))
        else:
            settings = {"time_limit": time_limit, "architecture": tower, "max_iterations": 1}
            rows.append(timed_search("tower", settings, train, test, seed))
    if "cnn" in names:
        keras.utils.clear_session()
        start = time.perf_counter()
        model, epochs = train_to_time_limit(train, time_limit, seed)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "run": "cnn",
                "seed": seed,
                "time_limit": time_limit,
                "members": ["plain CNN"],
                "params": model.count_params(),
                "epochs_per_member": [epochs],
                "test_accuracy": test_accuracy(model, test),
                "seconds": seconds,
            }
        )
    return rows


def accuracy_by_run(rows):
    """Per run name, in order: its rows, and their test accuracy's mean and
    spread (sample standard deviation; NaN for one seed)."""
    for name in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == name]
        accuracy = [r["test_accuracy"] for r in mine]
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else float("nan")
        yield name, mine, statistics.mean(accuracy), spread


def timed_summary(rows):
    """One line per run: accuracy mean and spread over seeds, params, time."""
    lines = [
        f"{'run':<7} {'seeds':>5} {'members (seed 1st)':<22} {'params':>9} "
        f"{'test acc mean':>13} {'spread':>7} {'fit s':>6}"
    ]
    for name, mine, mean, spread in accuracy_by_run(rows):
        lines.append(
            f"{name:<7} {len(mine):>5} {','.join(mine[0]['members']):<22} "
            f"{mine[0]['params']:>9,} {mean:>13.4f} {spread:>7.4f} "
            f"{statistics.mean(r['seconds'] for r in mine):>6.0f}"
        )
    return "\n".join(lines)


def summary(rows):
    """One line per run: accuracy mean and spread over seeds, params, time."""
    lines = [
        f"{'run':<11} {'seeds':>5} {'members':<22} {'params':>8} {'epochs':>6} "
        f"{'test acc mean':>13} {'spread':>7} {'fit s':>6}"
    ]
    for name, mine, mean, spread in accuracy_by_run(rows):
        members = ",".join(mine[0]["members"])
        lines.append(
            f"{name:<11} {len(mine):>5} {members:<22} {mine[0]['params']:>8,} "
            f"{mine[0]['epochs_per_member']:>6} {mean:>13.4f} "
            f"{spread:>7.4f} {statistics.mean(r['seconds'] for r in mine):>6.0f}"
        )
    return "\n".join(lines)


def report(row, json_path):
    """Prints `row` as a JSON line, appends it to `json_path` (if any) and
    returns it."""
    print(json.dumps(row), flush=True)
    if json_path:
        with open(json_path, "a") as file:
            file.write(json.dumps(row) + "\n")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs per network")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--member", default="1@96", help="the ensembles' member N@F")
    parser.add_argument("--single", default=None, help="the single network's N@F")
    parser.add_argument("--runs", default=None, help=f"among {RUNS}, or {TIMED_RUNS} with a limit")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds each run gets (the timed runs)"
    )
    parser.add_argument(
        "--architecture", default=None, help="the timed search's N@F (default: it sizes it)"
    )
    parser.add_argument(
        "--max-iterations", type=int, default=None, help="cap on the timed search's members"
    )
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--json", default=None, help="append one JSON line per run here")
    parser.add_argument(
        "--learning-rate", type=float, default=0.025, help="at batch 32, for every run"
    )
    parser.add_argument(
        "--no-augment", action="store_true", help="train without the CIFAR augmentation"
    )
    args = parser.parse_args()

    train = load_images(args.data)
    test = load_images(args.data, split="test", classes=train.classes)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.time_limit is not None:
        names = (args.runs or ",".join(TIMED_RUNS)).split(",")
        unknown = sorted(set(names) - set(TIMED_RUNS))
        if unknown:
            raise ValueError(f"`--runs` with a time limit names runs among {TIMED_RUNS}.")
        rows = []
        for seed in seeds:
            runs = timed_runs(
                names, args.time_limit, train, test, seed, args.architecture, args.max_iterations
            )
            for row in runs:
                rows.append(report(row, args.json))
        print("\n" + timed_summary(rows))
        return
    member = Architecture.parse(args.member)
    single = Architecture.parse(args.single) if args.single else nearest_single(member, 10)
    ratio = single.count_params(train.num_classes) / (
        MEMBERS * member.count_params(train.num_classes)
    )
    print(f"single {single}: {ratio:.3f}x the parameters of {MEMBERS} x {member}", flush=True)

    names = (args.runs or ",".join(RUNS)).split(",")
    settings = {n: run_settings(n, member, single, args.epochs, train.num_classes) for n in names}
    rows = []
    for seed in seeds:
        for name in names:
            row = run(
                name,
                settings[name],
                train,
                test,
                seed,
                learning_rate=args.learning_rate,
                augment=not args.no_augment,
            )
            rows.append(report(row, args.json))
    print("\n" + summary(rows))


if __name__ == "__main__":
    main()
