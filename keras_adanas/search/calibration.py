"""Times an iteration's training step on its own model, and trains it to plan.

A time-limited iteration (`keras_adanas.search.planner`) trains its
`Distiller` for `CALIBRATION_STEPS` real steps (the first compiles the
step), takes the median time of the last ones as the step time, and plans
from it. The steps count: the schedules span them too. It then trains epoch
by epoch (`train_to_plan`): after each call of `fit`, the step time that
call measured plans the rest anew, and the calls shorten as the end nears,
so that a step that runs faster or slower than the calibration timed (or
than it ran a while ago) still ends on time, with its schedules complete.
Each epoch's backup records its `TimedProgress`, from which a resumed
search plans the rest of the iteration.
"""

import dataclasses
import math
import statistics
import time

import keras

from keras_adanas.search.planner import (
    CALIBRATION_STEPS,
    TIMED_CALIBRATION_STEPS,
    IterationPlan,
)


@dataclasses.dataclass(frozen=True)
class TimedProgress:
    """How far a time-limited iteration had come when it was backed up.

    Attributes:
        steps: int, training steps trained, the calibration's included.
        seconds: float, the iteration's wall time until then.
        compile_seconds: float, what compiling its training step took.
        plan: the `IterationPlan` as it stood.

    Example:

    >>> TimedProgress.from_json(progress.to_json()) == progress
    True
    """

    steps: int
    seconds: float
    compile_seconds: float
    plan: IterationPlan

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record):
        """The record `to_json` wrote.

        Raises:
            ValueError: when `record` is not one.
        """
        if not isinstance(record, dict) or set(record) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(f"Not a time-limited iteration's progress: {record!r}")
        plan = record["plan"]
        numbers = [record["steps"], record["seconds"], record["compile_seconds"]]
        if not isinstance(plan, dict):
            raise ValueError(f"Not an iteration plan: {plan!r}")
        numbers += [plan.get(f.name) for f in dataclasses.fields(IterationPlan)]
        if any(
            isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n < 0
            for n in numbers
            if n is not None
        ):
            raise ValueError(f"Not a time-limited iteration's progress: {record!r}")
        try:
            plan = IterationPlan(**plan)
        except TypeError as error:  # a field missing or unknown
            raise ValueError(f"Not an iteration plan: {record['plan']!r}") from error
        return cls(
            steps=int(record["steps"]),
            seconds=float(record["seconds"]),
            compile_seconds=float(record["compile_seconds"]),
            plan=plan,
        )


class PlannedProgress:
    """A time-limited iteration's training as it goes: its plan as it stands
    and the steps trained, for its epoch backups.

    Args:
        planner: the `TimePlanner` (its clock and the iteration's start).
        plan: the `IterationPlan`; replaced as the training plans anew.
        deadline: the `Deadline` callback, which counts the steps trained.
        steps_before: int, steps trained before `deadline` started counting.
        compile_seconds: float, what compiling the training step took.
    """

    def __init__(self, planner, plan, deadline, steps_before, compile_seconds):
        self.planner = planner
        self.plan = plan
        self.deadline = deadline
        self.steps_before = int(steps_before)
        self.compile_seconds = float(compile_seconds)

    def record(self):
        """The `TimedProgress` now."""
        return TimedProgress(
            steps=self.steps_before + self.deadline.steps_trained,
            seconds=self.planner.clock() - self.planner.iteration_started,
            compile_seconds=self.compile_seconds,
            plan=self.plan,
        )


class StepTimer(keras.callbacks.Callback):
    """Records each training batch's wall time.

    Attributes:
        seconds: list of float, one per batch, in order.
    """

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class Deadline(keras.callbacks.Callback):
    """Stops training once `clock()` reaches `deadline`: the safety net of a
    planned schedule, should the steps slow down.

    Args:
        deadline: float, a `clock()` reading.
        clock: callable returning seconds.

    Attributes:
        steps_trained: int, the training steps that ended while it watched.
    """

    def __init__(self, deadline, clock=time.monotonic):
        super().__init__()
        self.deadline = deadline
        self.clock = clock
        self.steps_trained = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps_trained += 1
        if self.clock() >= self.deadline:
            self.model.stop_training = True


def calibrate(model, dataset):
    """Trains `model` for `CALIBRATION_STEPS` steps of `dataset` and times them.

    Args:
        model: a compiled Keras model (the iteration's `Distiller`).
        dataset: its training data, at least `CALIBRATION_STEPS` batches.

    Returns:
        `(seconds_per_step, first_step_seconds, logs)`: the median seconds
        of the last `TIMED_CALIBRATION_STEPS` steps, the seconds of the first
        (which traced and compiled the step), and the epoch's logs (a dict).
    """
    timer = StepTimer()
    history = model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=CALIBRATION_STEPS,
        shuffle=False,
        callbacks=[timer],
        verbose=0,
    )
    logs = {key: float(values[-1]) for key, values in history.history.items()}
    return statistics.median(timer.seconds[-TIMED_CALIBRATION_STEPS:]), timer.seconds[0], logs


REPLANS_PER_ITERATION = 8
"""How often, at most, an iteration plans the rest of its steps anew."""

MIN_STEPS_BETWEEN_REPLANS = 100
"""The fewest steps between two plans: each `fit` call costs some time."""


class _StopAfter(keras.callbacks.Callback):
    """Stops `fit` at the end of its `epochs`-th epoch, or once `max_steps`
    steps have trained."""

    def __init__(self, epochs, max_steps):
        super().__init__()
        self.epochs = epochs
        self.max_steps = max_steps
        self.steps = 0
        self.epochs_done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps >= self.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done += 1
        if self.epochs_done >= self.epochs:
            self.model.stop_training = True


def train_to_plan(
    fit,
    plan,
    planner,
    deadline,
    steps_per_pass,
    on_plan,
    initial_epoch=0,
    steps_done=CALIBRATION_STEPS,
):
    """Trains a calibrated iteration to its plan, planning anew on the way.

    It trains whole epochs per `fit` call: at least `MIN_STEPS_BETWEEN_REPLANS`
    steps, at most an eighth of the plan, and at most half the steps left
    (so that the calls shorten towards the end). After each call, the wall
    time per step of that call (its overhead included) plans the rest anew
    (`TimePlanner.replan`), `deadline` takes the new plan's training
    deadline, and the schedules take the new length. A plan that is
    complete is not stretched.

    Args:
        fit: callable `(epochs, steps_per_epoch, initial_epoch,
            more_callbacks)` running Keras' `fit` on the training data and
            returning its `History`; `deadline` among its callbacks.
        plan: the calibrated `IterationPlan`.
        planner: the `TimePlanner`.
        deadline: the `Deadline` callback, which counts the steps trained.
        steps_per_pass: int, steps of one pass over the data.
        on_plan: callable `(plan, steps_done)` called with each new plan;
            it sets the schedules' length.
        initial_epoch: int, epochs trained before (by a run backed up).
        steps_done: int, steps trained before `deadline` started counting
            (the calibration's, and a backed-up run's).

    Returns:
        `(history, plan)`: the last `fit`'s `History` (None when no step
        was left) and the plan as last planned.
    """
    history = None
    epoch = int(initial_epoch)
    steps_before = int(steps_done)
    chunk = max(MIN_STEPS_BETWEEN_REPLANS, plan.steps / REPLANS_PER_ITERATION)
    most_epochs_per_call = max(1, math.ceil(chunk / steps_per_pass))
    fewest_epochs_per_call = max(1, math.ceil(MIN_STEPS_BETWEEN_REPLANS / steps_per_pass))
    while steps_done < plan.steps and planner.clock() < planner.training_deadline(plan):
        left = plan.steps - steps_done
        epochs_this_call = min(
            most_epochs_per_call,
            max(fewest_epochs_per_call, math.ceil(left / 2 / steps_per_pass)),
        )
        epochs = epoch + math.ceil(left / steps_per_pass)
        call_started = planner.clock()
        trained_before = deadline.steps_trained
        history = fit(epochs, steps_per_pass, epoch, [_StopAfter(epochs_this_call, left)])
        epoch += epochs_this_call
        steps_done = steps_before + deadline.steps_trained
        if steps_done < plan.steps:
            call_steps = max(deadline.steps_trained - trained_before, 1)
            seconds_per_step = (planner.clock() - call_started) / call_steps
            plan = planner.replan(plan, steps_done, seconds_per_step)
            # A new number of iterations moves the training deadline too.
            deadline.deadline = planner.training_deadline(plan)
            on_plan(plan, steps_done)
    return history, plan
