"""Times an iteration's training step on its own model, and trains it to plan.

A time-limited iteration (`keras_adanas.search.planner`) trains its
`Distiller` for `CALIBRATION_STEPS` real steps (the first compiles the
step), takes the median time of the last ones as the step time, and plans
from it. The steps count: the schedules span them too. It then trains epoch
by epoch (`train_to_plan`): after each call of `fit`, the step time that
call measured plans the rest anew, and the calls shorten as the end nears,
so that a step that runs faster or slower than the calibration timed (or
than it ran a while ago) still ends on time, with its schedules complete.
"""

import math
import statistics
import time

import keras

from keras_adanas.search.planner import CALIBRATION_STEPS, TIMED_CALIBRATION_STEPS


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


def train_to_plan(fit, plan, planner, deadline, steps_per_pass, set_total_steps):
    """Trains a calibrated iteration to its plan, planning anew on the way.

    It trains whole epochs per `fit` call: at least `MIN_STEPS_BETWEEN_REPLANS`
    steps, at most an eighth of the plan, and at most half the steps left
    (so that the calls shorten towards the end). After each call, the wall
    time per step of that call (its overhead included) plans the rest anew
    (`TimePlanner.replan`) and the schedules take the new length. A plan
    that is complete is not stretched.

    Args:
        fit: callable `(epochs, steps_per_epoch, initial_epoch,
            more_callbacks)` running Keras' `fit` on the training data and
            returning its `History`; `deadline` among its callbacks.
        plan: the calibrated `IterationPlan`.
        planner: the `TimePlanner`.
        deadline: the `Deadline` callback, which counts the steps trained.
        steps_per_pass: int, steps of one pass over the data.
        set_total_steps: callable `(total_steps, steps_done)` setting the
            schedules' length.

    Returns:
        `(history, plan)`: the last `fit`'s `History` (None when no step
        was left after the calibration) and the plan as last planned.
    """
    history = None
    epoch = 0
    steps_done = CALIBRATION_STEPS
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
        steps_before = deadline.steps_trained
        history = fit(epochs, steps_per_pass, epoch, [_StopAfter(epochs_this_call, left)])
        epoch += epochs_this_call
        steps_done = CALIBRATION_STEPS + deadline.steps_trained
        if steps_done < plan.steps:
            call_steps = max(deadline.steps_trained - steps_before, 1)
            seconds_per_step = (planner.clock() - call_started) / call_steps
            plan = planner.replan(plan, steps_done, seconds_per_step)
            set_total_steps(plan.steps, steps_done)
    return history, plan
