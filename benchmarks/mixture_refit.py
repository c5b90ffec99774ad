r"""How much the jointly learned mixture weights cost a finished search.

    python benchmarks/mixture_refit.py runs/demo digits
    python benchmarks/mixture_refit.py runs/cifar10-w-akd cifar10-dev.npz

The search learns iteration i's mixture weights (DESIGN.md, step 3) while the
new candidate trains: early on the candidate is poor, so the weights lean on
the earlier members, and by the time it is good the learning rate has decayed.
For every iteration of a finished search (a project directory or a saved
`.keras` classifier) with learned weights (`scalar` or `vector`), this prints
the test error and training cross-entropy of the ensemble of that iteration
with three sets of weights over the same frozen members:

- `learned`: the weights the search learned (its history);
- `refit`: weights fitted afterwards, by L-BFGS on the cross-entropy of the
  ensemble's logits over the training split without augmentation (the
  search's selection data), starting from the learned ones;
- `uniform`: 1/i each.

Nothing is written. The data is anything `load_images` takes with `train` and
`test` splits (an .npz with both, `digits`, `cifar10`).

`--refit-data DATA` refits on other labelled images instead, read as the
search reads `validation_data` (an .npz's test split): images the search did
not train on, such as its selection data. On the training images the
refitted weights can grow without bound once the ensemble fits them all;
held-out images say whether a refit would help a search that kept some
aside. With the digits' training split divided, 20% kept aside:

    python -c "import numpy as np; from sklearn.model_selection import \
    train_test_split as split; from keras_adanas.data import digits_images as d; \
    (x, y), (xt, yt) = d(), d('test'); xf, xh, yf, yh = split(x, y, \
    test_size=0.2, stratify=y, random_state=0); np.savez('fit.npz', x_train=xf, \
    y_train=yf, x_test=xt, y_test=yt); np.savez('held.npz', x_train=xh, \
    y_train=yh, x_test=xh, y_test=yh)"

    keras-adanas fit fit.npz --preset demo --validation-data held.npz \
        --directory runs/held --seed 0
    python benchmarks/mixture_refit.py runs/held fit.npz --refit-data held.npz

(and without `--refit-data` to refit on the training images of `fit.npz`).
"""

import argparse
import json

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from keras_adanas import AdaNASClassifier, load_images
from keras_adanas.reporting import members_logits
from keras_adanas.search import ensemble_crossentropy


def mixed(weights, logits):
    """`sum_k w_k * logits_k`, scalar `(k,)` or vector `(k, classes)` weights."""
    weights = np.asarray(weights, "float64")
    if weights.ndim == 1:
        weights = weights[:, None]
    return sum(w[None, :] * z for w, z in zip(weights, logits, strict=True))


def crossentropy_and_gradient(flat, shape, logits, labels):
    """The mean cross-entropy of the mixed logits and its gradient in `flat`."""
    weights = flat.reshape(shape)
    log_probabilities = log_softmax(mixed(weights, logits), axis=1)
    rows = np.arange(len(labels))
    loss = -float(np.mean(log_probabilities[rows, labels]))
    residual = np.exp(log_probabilities)
    residual[rows, labels] -= 1.0
    residual /= len(labels)
    if len(shape) == 1:
        gradient = np.array([np.sum(residual * z) for z in logits])
    else:
        gradient = np.stack([np.sum(residual * z, axis=0) for z in logits])
    return loss, gradient.ravel()


def refit(weights, logits, labels):
    """Weights minimizing the training cross-entropy, from `weights`."""
    weights = np.asarray(weights, "float64")
    result = minimize(
        crossentropy_and_gradient,
        weights.ravel(),
        args=(weights.shape, logits, labels),
        jac=True,
        method="L-BFGS-B",
    )
    return result.x.reshape(weights.shape)


def error(weights, logits, labels):
    return float(np.mean(np.argmax(mixed(weights, logits), axis=1) != labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a project directory or a saved .keras classifier")
    parser.add_argument("data", help="labelled data with train and test splits")
    parser.add_argument(
        "--refit-data",
        help="labelled images to refit on instead, read as `validation_data` is",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line per iteration")
    args = parser.parse_args()

    classifier = AdaNASClassifier.load(args.model)
    classes = list(classifier.classes_)
    if args.refit_data:
        fit_images = load_images(args.refit_data, split="test", classes=classes)
    else:
        fit_images = load_images(args.data, split="train", classes=classes)
    test = load_images(args.data, split="test", classes=classes)
    members = classifier.ensemble_.members
    fit_logits = members_logits(members, fit_images)
    test_logits = members_logits(members, test)

    fit_on = "refit_data" if args.refit_data else "train"
    rows = []
    count = 0
    for report in classifier.history_:
        if report["chosen"] is None:
            continue
        count += 1
        learned = np.asarray(report["mixture_weights"], "float64")
        if np.allclose(learned, 1.0 / count):
            continue  # uniform weights: nothing was learned
        uniform = np.full((count,), 1.0 / count)
        fitted = refit(learned, fit_logits[:count], fit_images.labels)
        row = {"iteration": int(report["iteration"]), "members": count}
        for name, weights in (("learned", learned), ("refit", fitted), ("uniform", uniform)):
            row[f"{name}_weights"] = np.round(weights, 4).tolist()
            row[f"{name}_test_error"] = error(weights, test_logits[:count], test.labels)
            # The search's selection loss where these are its selection
            # images: then the `learned` column is the history's.
            row[f"{name}_{fit_on}_crossentropy"] = ensemble_crossentropy(
                mixed(weights, fit_logits[:count]), fit_images.labels
            )
        rows.append(row)
        if args.json:
            print(json.dumps(row))

    if not rows:
        print("No iteration with learned mixture weights (scalar or vector) to refit.")
        return
    if not args.json:
        names = " ".join(f"{name:>9}" for name in ("learned", "refit", "uniform"))
        print(
            f"{'iter':>4} {'members':>7}  {'test error %':^29}  {fit_on + ' cross-entropy':^29}\n"
            f"{'':>4} {'':>7}  {names}  {names}"
        )
        for row in rows:
            errors = [100 * row[f"{n}_test_error"] for n in ("learned", "refit", "uniform")]
            losses = [row[f"{n}_{fit_on}_crossentropy"] for n in ("learned", "refit", "uniform")]
            print(
                f"{row['iteration']:>4} {row['members']:>7}  "
                + " ".join(f"{e:>9.2f}" for e in errors)
                + "  "
                + " ".join(f"{loss:>9.4f}" for loss in losses)
            )


if __name__ == "__main__":
    main()
