"""How a search runs: `IterationConfig` (one iteration) and `SearchConfig`."""

import dataclasses
import math

from keras_adanas.distillation import Distillation
from keras_adanas.recipe import PAPER_RECIPE, Recipe, resolve_recipe

# Under this many images per replica, `"auto"` synchronizes batch normalization:
# the statistics of a few images are noisy.
SYNCHRONIZED_BELOW = 16


@dataclasses.dataclass(frozen=True)
class IterationConfig:
    """How an iteration trains.

    Args:
        mixture_kind: `"uniform"`, `"scalar"` or `"vector"`.
        distillation: a `Distillation`.
        batch_size: int, the global batch size.
        epochs: int or None, epochs per iteration (one of epochs and steps).
        steps: int or None, training steps per iteration.
        recipe: the `Recipe` each candidate trains with (learning rate,
            augmentation, drop path, auxiliary weight, label smoothing,
            warm-up, batch-norm statistics recomputed).
        seed: int or None.
        jit_compile: bool or `"auto"`, as `keras.Model.compile`.
        synchronized_batch_norm: True, False or `"auto"`: whether batch
            normalization uses the statistics of the whole global batch
            under a multi-replica strategy (see `synchronizes_batch_norm`).
    """

    mixture_kind: str = "uniform"
    distillation: Distillation = Distillation()
    batch_size: int = 32
    epochs: int | None = 1
    steps: int | None = None
    recipe: Recipe = PAPER_RECIPE
    seed: int | None = None
    jit_compile: bool | str = "auto"
    synchronized_batch_norm: bool | str = "auto"

    @property
    def learning_rate(self):
        """The recipe's learning rate at batch 32."""
        return self.recipe.learning_rate

    def synchronizes_batch_norm(self, replicas):
        """Whether training on `replicas` replicas synchronizes batch
        normalization: with `"auto"`, when there are several and each
        replica's share of the batch is under `SYNCHRONIZED_BELOW` images."""
        if replicas < 2:
            return False
        if self.synchronized_batch_norm == "auto":
            return self.batch_size // replicas < SYNCHRONIZED_BELOW
        return bool(self.synchronized_batch_norm)

    def schedule(self, num_examples):
        """Returns `(epochs, steps_per_epoch)` covering the iteration.

        With `steps`, the steps are split into epochs of at most one pass over
        the data, all of equal length (the total rounds up by less than the
        number of epochs).
        """
        per_pass = max(1, math.ceil(num_examples / self.batch_size))
        if self.steps is None:
            return int(self.epochs), per_pass
        epochs = math.ceil(self.steps / per_pass)
        return epochs, math.ceil(self.steps / epochs)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """What a search does, from the checked arguments (`keras_adanas.parameters`).

    Attributes:
        budget: int, the most served parameters, or None.
        generator: the generator proposing each iteration's candidates.
        max_iterations: int, most iterations (skipped ones included).
        iteration: the `IterationConfig` every iteration trains with.
        dtype_policy: the dtype policy of new members, or None.
        tensorboard: bool, whether each iteration writes TensorBoard logs.
        verbose: 0, 1 or 2.
        recipe: `"auto"` or `"paper"`, the recipe the iterations train with
            once `for_data` has resolved it (`keras_adanas.recipe`).
        recipe_overrides: dict of `Recipe` fields given one by one (None:
            the recipe's).
        time_limit: float, the seconds the search may take (its iterations
            are then planned to it), or None.
    """

    budget: int | None
    generator: object
    max_iterations: int
    iteration: IterationConfig
    dtype_policy: object = None
    tensorboard: bool = False
    verbose: int = 1
    recipe: str = "paper"
    recipe_overrides: dict = dataclasses.field(default_factory=dict)
    time_limit: float | None = None

    def for_data(self, num_examples, image_shape):
        """This config with the recipe resolved for the training data: its
        size (the epochs each member trains; unknown before a time-limited
        search plans them) and its images."""
        iteration = self.iteration
        passes = None  # A time-limited search plans its members' length later.
        if self.time_limit is None and iteration.steps is None:
            passes = float(iteration.epochs)
        elif self.time_limit is None:
            passes = iteration.steps * iteration.batch_size / max(num_examples, 1)
        recipe = resolve_recipe(self.recipe, passes, image_shape, **self.recipe_overrides)
        return dataclasses.replace(self, iteration=dataclasses.replace(iteration, recipe=recipe))
