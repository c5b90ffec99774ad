"""An iteration's selection: each candidate's ensemble scored on the
selection data, the lowest loss chosen (`select`), with learned mixture
weights refitted first where the recipe says so."""

import dataclasses
import time
import warnings

import keras
import numpy as np

from keras_adanas.ensemble import MixtureWeights
from keras_adanas.inference import predict_images
from keras_adanas.search.distiller import candidate_key, ensemble_key, member_key
from keras_adanas.search.mixture_fit import refit_mixture_weights
from keras_adanas.search.state import CandidateRecord


@dataclasses.dataclass
class IterationResult:
    """What an iteration produced.

    Attributes:
        chosen: int, index of the chosen candidate, or None when every
            candidate diverged.
        member: the chosen candidate's served model (images -> logits),
            frozen, or None.
        mixture: the chosen candidate ensemble's `MixtureWeights`, frozen, or
            None.
        candidates: list of `CandidateRecord`, one per candidate.
        steps: int, training steps of the iteration.
        batch_size: int, the batch size it trained with.
        initial_epoch: int, epochs restored from a backup (0 if none).
        seconds: float, wall time of training and selection in this run
            (of a time-limited iteration resumed from a backup, with the
            seconds it had spent until then).
        images_per_second: float or None, steady-state training throughput
            (images of the shared batches per second, after the first,
            compiling batch); None when this run trained no batch.
        plan: the `IterationPlan` of a time-limited search, or None.
    """

    chosen: int | None
    member: keras.Model | None
    mixture: MixtureWeights | None
    candidates: list
    steps: int
    batch_size: int
    initial_epoch: int
    seconds: float
    images_per_second: float | None
    plan: object = None


def select_candidate(selection_losses):
    """Index of the lowest finite selection loss, or None if none is finite."""
    losses = np.asarray(selection_losses, dtype="float64")
    finite = np.isfinite(losses)
    if not finite.any():
        return None
    return int(np.argmin(np.where(finite, losses, np.inf)))


def ensemble_crossentropy(logits, labels):
    """Mean cross-entropy of integer labels under logits, in float64 NumPy."""
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def select(iteration, trained, selection_data):
    """Selects the candidate whose ensemble has the lowest selection loss.

    A candidate whose training loss is not finite has diverged: it is
    dropped with a warning and the others are selected among.

    Args:
        iteration: int, 1-based.
        trained: a `TrainedIteration`.
        selection_data: `LabeledImages` to select on (unaugmented).

    Returns:
        An `IterationResult`; its `chosen` is None when every candidate
        diverged.
    """
    candidates = trained.distiller.candidates
    diverged = trained.diverged
    for j, candidate in enumerate(candidates):
        if diverged[j]:
            warnings.warn(
                f"Candidate {j} ({candidate.architecture}) of iteration {iteration} "
                f"diverged (training loss {trained.train_losses[j]}); it is dropped.",
                stacklevel=3,
            )
    selection_losses = [None] * len(candidates)
    distiller = trained.distiller
    refits = distiller.mixture_fit == "refit" and distiller.mixtures[0].weight is not None
    if (len(candidates) > 1 or refits) and not all(diverged):
        batch_size = max(trained.batch_size, 256)
        predictions = predict_images(trained.distiller, selection_data, batch_size)
        if refits:
            _refit_mixtures(trained.distiller, predictions, selection_data.labels, diverged)
        selection_losses = [
            None
            if diverged[j]
            else ensemble_crossentropy(predictions[ensemble_key(j)], selection_data.labels)
            for j in range(len(candidates))
        ]
        if len(candidates) == 1:
            selection_losses = [None]
    chosen = None if all(diverged) else 0
    if len(candidates) > 1 and not all(diverged):
        chosen = select_candidate([np.nan if s is None else s for s in selection_losses])
    member = mixture = None
    if chosen is not None:
        member = candidates[chosen].without_auxiliary_head(name=f"member_{iteration}")
        member.trainable = False
        mixture = trained.distiller.mixtures[chosen]
        mixture.trainable = False
    return IterationResult(
        chosen=chosen,
        member=member,
        mixture=mixture,
        candidates=[
            CandidateRecord(
                architecture=str(c.architecture),
                train_loss=None if diverged[j] else trained.train_losses[j],
                selection_loss=selection_losses[j],
                diverged=diverged[j],
            )
            for j, c in enumerate(candidates)
        ],
        steps=trained.steps,
        batch_size=trained.batch_size,
        initial_epoch=trained.initial_epoch,
        seconds=time.perf_counter() - trained.started,
        images_per_second=trained.images_per_second,
        plan=trained.plan,
    )


def _refit_mixtures(distiller, predictions, labels, diverged):
    """Refits each candidate ensemble's mixture weights to the served logits
    of the selection data (`refit_mixture_weights`), and replaces its
    `ensemble_j` predictions with the refitted mixture's."""
    members = [predictions[member_key(k)] for k in range(len(distiller.members))]
    for j, mixture in enumerate(distiller.mixtures):
        if diverged[j]:
            continue
        logits = [*members, predictions[candidate_key(j)]]
        weights = refit_mixture_weights(mixture.member_weights(), logits, labels)
        mixture.weight.assign(weights)
        predictions[ensemble_key(j)] = keras.ops.convert_to_numpy(mixture(logits))
