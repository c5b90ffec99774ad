"""Fitting an ensemble's mixture weights to member logits as they are served.

`refit_mixture_weights` minimizes the mean cross-entropy of the mixed logits
`sum_k w_k * logits_k` (scalar weights, or one weight per member and class)
over the labelled images whose logits it is given, with L-BFGS from the
weights the mixture holds. The logits are the members' inference-mode ones,
as the ensemble serves them.
"""

import numpy as np

MAX_ITERATIONS = 100
"""L-BFGS iterations at most: on images the ensemble fits without an error
the cross-entropy keeps falling as the weights grow, so the fit stops."""


def mixed_crossentropy(weights, logits, labels):
    """The mean cross-entropy of `labels` under mixed logits, and its gradient.

    Args:
        weights: float array `(members,)` or `(members, classes)`.
        logits: float array `(members, images, classes)`.
        labels: int array `(images,)`, class indices.

    Returns:
        `(loss, gradient)`, the gradient shaped as `weights`.
    """
    per_class = weights if weights.ndim == 2 else weights[:, None]
    mixed = np.einsum("mnc,mc->nc", logits, np.broadcast_to(per_class, logits[:, 0].shape))
    shifted = mixed - mixed.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    count = len(labels)
    loss = -log_probabilities[np.arange(count), labels].mean()
    delta = np.exp(log_probabilities)
    delta[np.arange(count), labels] -= 1.0
    delta /= count
    gradient = np.einsum("nc,mnc->mc", delta, logits)
    return loss, gradient if weights.ndim == 2 else gradient.sum(axis=1)


def refit_mixture_weights(initial, logits, labels):
    """Mixture weights fitted to served logits, from `initial`.

    Args:
        initial: float array `(members,)` or `(members, classes)`, the
            weights to start from.
        logits: list of `(images, classes)` arrays, one per member, oldest
            first (the new candidate last).
        labels: int array `(images,)`, class indices.

    Returns:
        A float32 array shaped as `initial`.

    Example:

    >>> weights = refit_mixture_weights(np.full(2, 0.5), [old, new], labels)
    """
    from scipy.optimize import minimize  # SciPy comes with scikit-learn

    initial = np.asarray(initial, "float64")
    stacked = np.stack([np.asarray(member, "float64") for member in logits])
    labels = np.asarray(labels)

    def objective(flat):
        loss, gradient = mixed_crossentropy(flat.reshape(initial.shape), stacked, labels)
        return loss, gradient.ravel()

    result = minimize(
        objective,
        initial.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": MAX_ITERATIONS},
    )
    return result.x.reshape(initial.shape).astype("float32")
