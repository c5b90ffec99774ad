"""Times an iteration's training step on its own model, before it plans.

A time-limited iteration (`keras_adanas.search.planner`) trains its
`Distiller` for `CALIBRATION_STEPS` real steps (the first compiles the
step), takes the median time of the last ones as the step time, and plans
from it. The steps count: the schedules span them too.
"""

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
    """

    def __init__(self, deadline, clock=time.monotonic):
        super().__init__()
        self.deadline = deadline
        self.clock = clock

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() >= self.deadline:
            self.model.stop_training = True


def calibrate(model, dataset):
    """Trains `model` for `CALIBRATION_STEPS` steps of `dataset` and times them.

    Args:
        model: a compiled Keras model (the iteration's `Distiller`).
        dataset: its training data, at least `CALIBRATION_STEPS` batches.

    Returns:
        `(seconds_per_step, logs)`: the median seconds of the last
        `TIMED_CALIBRATION_STEPS` steps, and the epoch's logs (a dict).
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
    return statistics.median(timer.seconds[-TIMED_CALIBRATION_STEPS:]), logs
