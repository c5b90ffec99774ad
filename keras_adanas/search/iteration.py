"""One AdaNAS iteration: train every candidate together, then select one.

`train_candidates` trains the iteration's candidates in one `Distiller` (see
`keras_adanas.search.distiller`), resuming from an epoch backup where one is
found; `select` (`keras_adanas.search.selection`) scores each candidate's
ensemble on the selection data and picks the lowest loss. `run_iteration`
does both.
"""

import dataclasses
import math
import time

import keras

from keras_adanas.backup import IterationBackup, weights_digest
from keras_adanas.distribute import average_over_replicas, replicas_in_sync
from keras_adanas.nasnet import (
    recompute_batch_statistics,
    set_drop_path_schedule,
    synchronized_batch_norm,
)
from keras_adanas.recipe import MOMENTUM, learning_rate_schedule, scaled_learning_rate
from keras_adanas.search.calibration import (
    Deadline,
    PlannedProgress,
    TimedProgress,
    calibrate,
    train_to_plan,
)
from keras_adanas.search.callbacks import ThroughputTimer
from keras_adanas.search.distiller import Distiller, candidate_key
from keras_adanas.search.optimizer import GroupedClippingSGD
from keras_adanas.search.planner import CALIBRATION_STEPS
from keras_adanas.search.schedule import PlannedCosineDecay
from keras_adanas.search.selection import select
from keras_adanas.tracing import expected_traces


@dataclasses.dataclass
class TrainedIteration:
    """Candidates trained together, before the selection.

    Attributes:
        distiller: the `Distiller` that trained them.
        train_losses: list of float, each candidate's last-epoch loss.
        steps: int, training steps of the iteration (of a time-limited
            one, those it trained, fewer than `plan.steps` when its
            deadline stopped it).
        batch_size: int, the batch size it trained with.
        initial_epoch: int, epochs restored from a backup (0 if none).
        images_per_second: float or None (`ThroughputTimer`).
        started: float, `time.perf_counter()` when the iteration's training
            model was built (its compilation and calibration count); of a
            time-limited iteration resumed from a backup, earlier by the
            seconds it had spent until then.
        plan: the `IterationPlan` of a time-limited search, or None.
    """

    distiller: Distiller
    train_losses: list
    steps: int
    batch_size: int
    initial_epoch: int
    images_per_second: float | None
    started: float
    plan: object = None

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
    planner=None,
    selection_steps=0,
):
    """Trains the candidates of one iteration together.

    Candidates built under `"mixed_float16"` train with a dynamic loss scale.
    Arguments as `run_iteration`, and for a time-limited search, `planner`
    (a `TimePlanner`): the iteration times its step (`calibrate`), and
    trains as many steps as the planner's `IterationPlan` gives it
    (`selection_steps`: inference batches of its selection); its
    `config`'s epochs or steps are only the first guess. Its epoch backups
    record its `TimedProgress`: resumed, it restores the last, counts the
    seconds spent until then against the limit, and plans the rest of its
    steps anew from the step time last measured.

    Returns:
        A `TrainedIteration`.
    """
    started = time.perf_counter()
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
    if planner is None:
        learning_rate = learning_rate_schedule(
            total_steps, config.batch_size, config.recipe.learning_rate, config.recipe.warmup
        )
    else:
        learning_rate = PlannedCosineDecay(
            scaled_learning_rate(config.batch_size, config.recipe.learning_rate),
            total_steps,
            config.recipe.warmup,
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
    synchronized = config.synchronizes_batch_norm(replicas_in_sync())
    callbacks = list(callbacks or [])
    plan = calibration_logs = deadline = None
    backup = None
    initial_epoch = 0
    if backup_dir is not None:
        signature = {
            "iteration": iteration,
            "candidates": [str(c.architecture) for c in candidates],
            "batch_size": config.batch_size,
            "seed": seed,
            # The ensemble it trains against: another search's backup of the
            # same iteration is not this one's.
            "teacher": weights_digest(
                [*members, *([previous_mixture] if previous_mixture is not None else [])]
            ),
        }
        if planner is None:
            signature.update(epochs=epochs, steps_per_epoch=steps_per_epoch)
        else:
            signature["time_limited"] = True
        backup = IterationBackup(
            backup_dir, signature, progress_type=None if planner is None else TimedProgress
        )
    if planner is not None:
        learning_rate.attach(getattr(optimizer, "inner_optimizer", optimizer))
        # Restored after `attach`: the schedule's length is optimizer state.
        initial_epoch = backup.restore(distiller) if backup else 0
        resumed = backup.restored_progress if initial_epoch else None
        steps_per_pass = math.ceil(len(train_data) / config.batch_size)
        complete = resumed is not None and resumed.steps >= resumed.plan.steps
        # A complete plan goes straight on to the selection; any other
        # training times its step first, those steps counting too.
        steps_before = (0 if resumed is None else resumed.steps) + (
            0 if complete else CALIBRATION_STEPS
        )
        if resumed is not None:
            # Its seconds so far count, and its number of iterations stands.
            planner.resume_iteration(resumed.seconds, resumed.plan.planned_iterations)
            started -= resumed.seconds
            if verbose:
                print(
                    f"Iteration {iteration}: restored the backup after {resumed.steps} of "
                    f"{resumed.plan.steps} planned steps ({resumed.seconds:.0f}s spent).",
                    flush=True,
                )
        if complete:
            compile_seconds = resumed.compile_seconds
            seconds_per_step = resumed.plan.replanned_seconds_per_step
            seconds_per_step = seconds_per_step or resumed.plan.seconds_per_step
        else:
            # (Resumed, the calibration's steps go on along the restored schedules.)
            calibration_data = train_data.training_dataset(
                config.batch_size,
                augment=config.recipe.augment,
                cutout_size=config.recipe.cutout_size(train_data.image_shape),
                epochs=None,  # repeated: the calibration may outlast one pass
                steps_per_epoch=CALIBRATION_STEPS,
                seed=seed,
            )
            with expected_traces(), synchronized_batch_norm(candidates, synchronized):
                seconds_per_step, compile_seconds, calibration_logs = calibrate(
                    distiller, calibration_data
                )
        plan = planner.plan(
            seconds_per_step,
            steps_per_pass,
            selection_steps,
            compile_seconds=compile_seconds,
            steps_done=steps_before,
            overhead_seconds=None if resumed is None else resumed.plan.overhead_seconds,
        )
        if complete:
            plan = dataclasses.replace(plan, steps=steps_before)
        deadline = Deadline(planner.training_deadline(plan), planner.clock)
        callbacks.append(deadline)
        progress = PlannedProgress(planner, plan, deadline, steps_before, compile_seconds)
        if backup:
            backup.progress = progress.record

        def on_plan(new_plan, steps_done):
            progress.plan = new_plan
            learning_rate.set_total_steps(new_plan.steps)
            for candidate in candidates:
                set_drop_path_schedule(candidate, new_plan.steps, step=steps_done)

        on_plan(plan, steps_before)
    elif backup:
        initial_epoch = backup.restore(distiller)
        if initial_epoch and verbose:
            print(
                f"Iteration {iteration}: restored the backup after epoch {initial_epoch}/{epochs}.",
                flush=True,
            )
    timer = ThroughputTimer(config.batch_size)
    history = None

    def fit(epochs, steps_per_epoch, initial_epoch=0, more_callbacks=()):
        dataset = train_data.training_dataset(
            config.batch_size,
            augment=config.recipe.augment,
            cutout_size=config.recipe.cutout_size(train_data.image_shape),
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            seed=seed,
        )
        with expected_traces(), synchronized_batch_norm(candidates, synchronized):
            return distiller.fit(
                dataset,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                shuffle=False,  # The dataset shuffles each epoch itself.
                callbacks=[*callbacks, timer, *([backup] if backup else []), *more_callbacks],
                verbose=verbose,
            )

    if plan is not None:
        history, plan = train_to_plan(
            fit,
            plan,
            planner,
            deadline,
            steps_per_pass,
            on_plan,
            initial_epoch=initial_epoch,
            steps_done=steps_before,
        )
    elif initial_epoch < epochs:  # Keras' `fit` breaks when no epoch is left.
        history = fit(epochs, steps_per_epoch, initial_epoch)
    average_over_replicas(moving_statistics(candidates))
    if config.recipe.recompute_batch_statistics:
        for candidate in candidates:
            recompute_batch_statistics(candidate, train_data.images)
    if backup and backup.epoch_logs:
        epoch_logs = backup.epoch_logs
    else:
        epoch_logs = _epoch_logs(history.history) if history else [calibration_logs]
    if deadline is not None:
        # What happened against the plan: fewer steps when the deadline cut in.
        total_steps = steps_before + deadline.steps_trained
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
        plan=plan,
    )


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
