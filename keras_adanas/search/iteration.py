"""One AdaNAS iteration: train every candidate together, then select one.

`train_candidates` trains the iteration's candidates in one `Distiller` (see
`keras_adanas.search.distiller`), resuming from an epoch backup where one is
found; `select` scores each candidate's ensemble on the selection data and
picks the lowest loss. `run_iteration` does both.
"""

import dataclasses
import math
import time
import warnings

import keras
import numpy as np

from keras_adanas.backup import IterationBackup, weights_digest
from keras_adanas.distribute import average_over_replicas, replicas_in_sync
from keras_adanas.ensemble import MixtureWeights
from keras_adanas.inference import predict_images
from keras_adanas.nasnet import (
    recompute_batch_statistics,
    set_drop_path_schedule,
    synchronized_batch_norm,
)
from keras_adanas.recipe import MOMENTUM, learning_rate_schedule
from keras_adanas.search.callbacks import ThroughputTimer
from keras_adanas.search.distiller import Distiller, candidate_key, ensemble_key, member_key
from keras_adanas.search.mixture_fit import refit_mixture_weights
from keras_adanas.search.optimizer import GroupedClippingSGD
from keras_adanas.search.state import CandidateRecord
from keras_adanas.tracing import expected_traces


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
        seconds: float, wall time of training and selection in this run.
        images_per_second: float or None, steady-state training throughput
            (images of the shared batches per second, after the first,
            compiling batch); None when this run trained no batch.
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


@dataclasses.dataclass
class TrainedIteration:
    """Candidates trained together, before the selection.

    Attributes:
        distiller: the `Distiller` that trained them.
        train_losses: list of float, each candidate's last-epoch loss.
        steps: int, training steps of the iteration.
        batch_size: int, the batch size it trained with.
        initial_epoch: int, epochs restored from a backup (0 if none).
        images_per_second: float or None (`ThroughputTimer`).
        started: float, `time.perf_counter()` when the training started.
    """

    distiller: Distiller
    train_losses: list
    steps: int
    batch_size: int
    initial_epoch: int
    images_per_second: float | None
    started: float

    @property
    def diverged(self):
        """Whether each candidate's loss is NaN or infinite."""
        return [not math.isfinite(loss) for loss in self.train_losses]


def moving_statistics(models):
    """The batch-normalization moving means and variances of `models`."""
    return [
        variable
        for model in models
        for variable in model.non_trainable_variables
        if variable.name in ("moving_mean", "moving_variance")
    ]


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


def train_candidates(
    iteration,
    candidates,
    train_data,
    config,
    members=(),
    previous_mixture=None,
    callbacks=None,
    verbose=0,
    backup_dir=None,
):
    """Trains the candidates of one iteration together.

    Candidates built under `"mixed_float16"` train with a dynamic loss scale.
    Arguments as `run_iteration`.

    Returns:
        A `TrainedIteration`.
    """
    epochs, steps_per_epoch = config.schedule(len(train_data))
    total_steps = epochs * steps_per_epoch
    distiller = Distiller(
        candidates,
        members=members,
        previous_mixture=previous_mixture,
        mixture_kind=config.mixture_kind,
        distillation=config.distillation,
        label_smoothing=config.recipe.label_smoothing,
        auxiliary_weight=config.recipe.auxiliary_weight,
        mixture_fit=config.recipe.mixture_fit,
    )
    for candidate in candidates:
        set_drop_path_schedule(candidate, total_steps)
    learning_rate = learning_rate_schedule(
        total_steps, config.batch_size, config.recipe.learning_rate, config.recipe.warmup
    )
    optimizer = GroupedClippingSGD(
        distiller.variable_groups(), learning_rate=learning_rate, momentum=MOMENTUM
    )
    if any(c.dtype_policy.name == "mixed_float16" for c in candidates):
        # float16 gradients underflow without it; the wrapper unscales them
        # before the clipping, so the clip norm is that of the true gradient.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    distiller.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    # Built here, not lazily inside the first traced step: a step that
    # creates variables is traced twice.
    optimizer.build(distiller.trainable_variables)
    seed = None if config.seed is None else config.seed + iteration
    backup = None
    initial_epoch = 0
    if backup_dir is not None:
        signature = {
            "iteration": iteration,
            "candidates": [str(c.architecture) for c in candidates],
            "batch_size": config.batch_size,
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "seed": seed,
            # The ensemble it trains against: another search's backup of the
            # same iteration is not this one's.
            "teacher": weights_digest(
                [*members, *([previous_mixture] if previous_mixture is not None else [])]
            ),
        }
        backup = IterationBackup(backup_dir, signature)
        initial_epoch = backup.restore(distiller)
        if initial_epoch and verbose:
            print(
                f"Iteration {iteration}: restored the backup after epoch {initial_epoch}/{epochs}.",
                flush=True,
            )
    timer = ThroughputTimer(config.batch_size)
    started = time.perf_counter()
    history = None
    if initial_epoch < epochs:  # Keras' `fit` breaks when no epoch is left.
        dataset = train_data.training_dataset(
            config.batch_size,
            augment=config.recipe.augment,
            cutout_size=config.recipe.cutout_size(train_data.image_shape),
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            seed=seed,
        )
        synchronized = config.synchronizes_batch_norm(replicas_in_sync())
        with expected_traces(), synchronized_batch_norm(candidates, synchronized):
            history = distiller.fit(
                dataset,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                shuffle=False,  # The dataset shuffles each epoch itself.
                callbacks=[*(callbacks or []), timer, *([backup] if backup else [])],
                verbose=verbose,
            )
    average_over_replicas(moving_statistics(candidates))
    if config.recipe.recompute_batch_statistics:
        for candidate in candidates:
            recompute_batch_statistics(candidate, train_data.images)
    epoch_logs = backup.epoch_logs if backup else _epoch_logs(history.history)
    return TrainedIteration(
        distiller=distiller,
        train_losses=[
            float(epoch_logs[-1][f"{candidate_key(j)}_loss"]) for j in range(len(candidates))
        ],
        steps=total_steps,
        batch_size=config.batch_size,
        initial_epoch=initial_epoch,
        images_per_second=timer.images_per_second,
        started=started,
    )


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


def run_iteration(
    iteration,
    candidates,
    train_data,
    selection_data,
    config,
    members=(),
    previous_mixture=None,
    callbacks=None,
    verbose=0,
    backup_dir=None,
):
    """Trains the candidates of one iteration together and selects one.

    Args:
        iteration: int, 1-based.
        candidates: list of `NASNetA` with auxiliary heads (see
            `build_candidates`).
        train_data: `LabeledImages` to train on.
        selection_data: `LabeledImages` to select on (unaugmented).
        config: an `IterationConfig`.
        members: the previous ensemble's frozen members.
        previous_mixture: the previous ensemble's `MixtureWeights` or None.
        callbacks: list of Keras callbacks for `fit`.
        verbose: 0, 1 or 2, as Keras' `fit`.
        backup_dir: a folder for epoch backups (`IterationBackup`), or None.
            A backup of this same training found there is restored and the
            training goes on from its epoch, on the batches it would have
            seen.

    Returns:
        An `IterationResult` (see `select`).

    Example:

    >>> candidates = build_candidates(["1@24", "1@48"], 10, (32, 32, 3), 1, seed=0)
    >>> result = run_iteration(1, candidates, train, train, IterationConfig(epochs=1))
    >>> result.candidates[result.chosen].architecture
    '1@48'
    """
    trained = train_candidates(
        iteration,
        candidates,
        train_data,
        config,
        members=members,
        previous_mixture=previous_mixture,
        callbacks=callbacks,
        verbose=verbose,
        backup_dir=backup_dir,
    )
    return select(iteration, trained, selection_data)


def _epoch_logs(history):
    """Keras' `History.history` (lists per metric) as one dict per epoch."""
    epochs = len(next(iter(history.values()), []))
    return [{k: float(v[e]) for k, v in history.items()} for e in range(epochs)]
