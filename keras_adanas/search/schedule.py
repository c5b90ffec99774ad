"""A cosine learning-rate schedule whose length is set once training has begun.

A time-limited iteration (`keras_adanas.search.planner`) learns how many
steps it can afford only after it has timed a few of them; its schedule must
then span that many steps, from the start. Keras' `CosineDecay` fixes its
length when built; `PlannedCosineDecay` reads it from a variable of the
optimizer, so that the length set between two `fit` calls holds on every
backend (JAX passes only the optimizer's own variables into its compiled
step).
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_adanas")
class PlannedCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine decay to 0, over a length set later.

    With `warmup = 0` it is Keras' `CosineDecay(learning_rate, total_steps)`;
    with warm-up, the rate rises linearly from 0 over the first
    `warmup * total_steps` steps and the cosine takes the rest, as
    `CosineDecay(0.0, ..., warmup_target=learning_rate)`.

    Args:
        learning_rate: float, the peak learning rate.
        total_steps: int, the provisional length, until `attach` and
            `set_total_steps`.
        warmup: float in [0, 1), the fraction of the steps of warm-up.

    Example:

    >>> schedule = PlannedCosineDecay(0.1, total_steps=100)
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule)
    >>> optimizer.build(model.trainable_variables)
    >>> schedule.attach(optimizer)
    >>> schedule.set_total_steps(5000)
    """

    def __init__(self, learning_rate, total_steps, warmup=0.0):
        self.learning_rate = float(learning_rate)
        self.initial_total_steps = int(total_steps)
        self.warmup = float(warmup)
        self.total_steps = None

    def attach(self, optimizer):
        """Creates the length variable as one of `optimizer`'s (after its
        `build`), so that it travels with the optimizer's state."""
        self.total_steps = optimizer.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(float(self.initial_total_steps)),
            dtype="float32",
            name="planned_steps",
        )

    def set_total_steps(self, total_steps):
        """Sets the length (between `fit` calls)."""
        if self.total_steps is None:
            raise RuntimeError("`attach` the schedule to its optimizer first.")
        self.total_steps.assign(float(total_steps))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        total = (
            ops.convert_to_tensor(float(self.initial_total_steps))
            if self.total_steps is None
            else ops.cast(self.total_steps, "float32")
        )
        warmup_steps = ops.floor(self.warmup * total)
        rising = self.learning_rate * step / ops.maximum(warmup_steps, 1.0)
        progress = ops.clip((step - warmup_steps) / ops.maximum(total - warmup_steps, 1.0), 0, 1)
        decaying = 0.5 * self.learning_rate * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup_steps, rising, decaying)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.initial_total_steps,
            "warmup": self.warmup,
        }
