"""What a search did: its iteration table, its errors, and two plots.

- `format_history`: one row per candidate of every iteration.
- `iteration_errors`: on labelled data, the error of the ensemble after each
  iteration beside each member's own error.
- `plot_errors`: those errors against the iteration (PNG).
- `plot_architectures`: every candidate explored and every member chosen on
  a depth x width chart, as Figure 3 of the AdaNAS paper (PNG).
- `write_report_plots`: both plots into a folder.

Plots are drawn with matplotlib's object API (`matplotlib.figure.Figure`),
which needs no display and leaves pyplot's global state alone.
"""

import os

import keras
import numpy as np

from keras_adanas.architecture import Architecture
from keras_adanas.data import load_images
from keras_adanas.inference import predict_images
from keras_adanas.io_utils import save_figure_atomically
from keras_adanas.project import ARCHITECTURES_PLOT, ERRORS_PLOT


def format_history(history):
    """A text table of a search's history, one row per candidate.

    Args:
        history: `AdaNASClassifier.history_`, a list of iteration reports.

    Returns:
        A str.

    Example:

    The table of `keras-adanas demo --max-iterations 2 --seed 0` (two
    candidates per iteration, the second chosen each time):

    >>> print(format_history(classifier.history_))
    iter  candidate  train loss  selection  chosen   steps batch  seconds images/s
    ------------------------------------------------------------------------------
       1  2@24           3.2604     1.0583              69    64     35.5      335
       1  1@48           2.9822     0.7042  yes         69    64     35.5      335
       2  2@48           5.0586     0.5120              69    64     44.1      255
       2  1@72           4.5139     0.4254  yes         69    64     44.1      255
    """
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


def members_logits(members, data):
    """Every member's logits on `data`'s images, in one pass.

    One model with an output per member runs one compiled predict function
    (a `predict` per member would trace one each).

    Args:
        members: a list of Keras models taking raw images, such as
            `classifier.ensemble_.members`.
        data: a `LabeledImages` (from `load_images`).

    Returns:
        A list of float64 arrays `(N, classes)`, one per member.

    Example:

    >>> logits = members_logits(classifier.ensemble_.members, load_images(x))
    """
    inputs = keras.Input(data.images.shape[1:], name="images")
    outputs = {f"member_{k}": member(inputs) for k, member in enumerate(members)}
    logits = predict_images(keras.Model(inputs, outputs), data, 256)
    return [np.asarray(logits[f"member_{k}"], dtype="float64") for k in range(len(members))]


def _number(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def iteration_errors(classifier, data, y=None):
    """Test errors of the ensemble as it grew, and of each member alone.

    Each member's logits are computed once; the ensemble after iteration `i`
    mixes the members it had then with the weights learned at `i` (from the
    history), exactly as the ensemble saved at `i` did.

    Args:
        classifier: a fitted `AdaNASClassifier`.
        data: labelled data, anything `load_images` accepts (the `"test"`
            split for sources with splits).
        y: labels when `data` is an array of images.

    Returns:
        A dict of lists, one entry per iteration that added a member:
        `iteration`, `members` (ensemble size), `ensemble_error`,
        `member_error` (the new member alone), `best_member_error` (the best
        single member so far).

    Example:

    >>> errors = iteration_errors(classifier, "cifar10-dev.npz")
    >>> errors["ensemble_error"][-1] <= min(errors["member_error"])
    """
    loaded = load_images(data, y, split="test", classes=list(classifier.classes_))
    if loaded.labels is None:
        raise ValueError("`iteration_errors` needs labelled data. Received: no labels")
    member_logits = members_logits(classifier.ensemble_.members, loaded)
    errors = {
        "iteration": [],
        "members": [],
        "ensemble_error": [],
        "member_error": [],
        "best_member_error": [],
    }
    count = 0
    for report in classifier.history_:
        if report["chosen"] is None:
            continue
        count += 1
        weights = np.asarray(report["mixture_weights"], dtype="float64")
        logits = sum(_weighted(weights[k], member_logits[k]) for k in range(count))
        member_error = _error(member_logits[count - 1], loaded.labels)
        errors["iteration"].append(int(report["iteration"]))
        errors["members"].append(count)
        errors["ensemble_error"].append(_error(logits, loaded.labels))
        errors["member_error"].append(member_error)
        errors["best_member_error"].append(min([member_error, *errors["best_member_error"][-1:]]))
    return errors


def _weighted(weight, logits):
    # A scalar weight, or one weight per class (vector mixture weights).
    return weight * logits if np.ndim(weight) == 0 else logits * weight[None, :]


def _error(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) != labels))


def plot_errors(errors, path, title=None):
    """Draws the ensemble's error per iteration beside the best single member's.

    Args:
        errors: the dict `iteration_errors` returns.
        path: the PNG file to write (atomically).
        title: str or None.

    Returns:
        `path`.

    Example:

    >>> errors = iteration_errors(classifier, "cifar10-dev.npz")
    >>> plot_errors(errors, "errors.png", title="CIFAR-10")
    'errors.png'
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.add_subplot()
    iterations = errors["iteration"]
    axes.plot(iterations, _percent(errors["ensemble_error"]), "o-", label="ensemble")
    axes.plot(iterations, _percent(errors["best_member_error"]), "s--", label="best single member")
    axes.plot(
        iterations,
        _percent(errors["member_error"]),
        "x",
        color="gray",
        label="member of the iteration, alone",
    )
    axes.set_xlabel("iteration")
    axes.set_ylabel("test error (%)")
    axes.set_xticks(iterations)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title or "Ensemble error as the search grows")
    figure.tight_layout()
    return save_figure_atomically(figure, path)


def _percent(values):
    return [100.0 * v for v in values]


def plot_architectures(history, path, title=None):
    """Draws the explored and chosen architectures on a depth x width chart.

    Every candidate of every iteration is a hollow circle at (F, N), its size
    growing with how often it was proposed; each chosen member is a filled
    dot labelled with its iteration, as in Figure 3 of the AdaNAS paper.

    Args:
        history: `AdaNASClassifier.history_`.
        path: the PNG file to write (atomically).
        title: str or None.

    Returns:
        `path`.

    Example:

    >>> plot_architectures(classifier.history_, "architectures.png")
    'architectures.png'
    """
    from matplotlib.figure import Figure

    explored = {}
    chosen = {}
    for report in history:
        for candidate in report["candidates"]:
            architecture = Architecture.parse(candidate["architecture"])
            explored[architecture] = explored.get(architecture, 0) + 1
        if report["chosen"] is not None:
            architecture = Architecture.parse(report["architecture"])
            chosen.setdefault(architecture, []).append(report["iteration"])
    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.add_subplot()
    if explored:
        axes.scatter(
            [a.filters for a in explored],
            [a.depth for a in explored],
            s=[60 + 40 * count for count in explored.values()],
            facecolors="none",
            edgecolors="tab:blue",
            label="explored",
        )
    if chosen:
        axes.scatter(
            [a.filters for a in chosen],
            [a.depth for a in chosen],
            s=40,
            color="tab:red",
            label="chosen",
            zorder=3,
        )
        for architecture, iterations in chosen.items():
            axes.annotate(
                ",".join(str(i) for i in iterations),
                (architecture.filters, architecture.depth),
                textcoords="offset points",
                xytext=(6, 6),
                fontsize=8,
            )
    depths = sorted({a.depth for a in explored}) or [1]
    widths = sorted({a.filters for a in explored}) or [24]
    axes.set_yticks(depths)
    axes.set_xticks(widths)
    axes.margins(0.2)
    axes.set_xlabel("width F (filters)")
    axes.set_ylabel("depth N (cells per stack)")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    axes.set_title(title or "Architectures explored and chosen (labels: iterations)")
    figure.tight_layout()
    return save_figure_atomically(figure, path)


def write_report_plots(classifier, folder, data=None, y=None):
    """Writes `architectures.png`, and with labelled `data` `errors.png`.

    Args:
        classifier: a fitted `AdaNASClassifier`.
        folder: where to write them (created if needed).
        data, y: labelled data for the errors plot, or None to skip it.

    Returns:
        A dict: `paths` (the files written) and `errors` (the dict of
        `iteration_errors`, or None).

    Example:

    >>> report = write_report_plots(classifier, "plots", "cifar10-dev.npz")
    >>> [os.path.basename(path) for path in report["paths"]]
    ['architectures.png', 'errors.png']
    """
    folder = os.fspath(folder)
    errors = None if data is None else iteration_errors(classifier, data, y)
    os.makedirs(folder, exist_ok=True)
    paths = [plot_architectures(classifier.history_, os.path.join(folder, ARCHITECTURES_PLOT))]
    if errors is not None:
        paths.append(plot_errors(errors, os.path.join(folder, ERRORS_PLOT)))
    return {"paths": paths, "errors": errors}
