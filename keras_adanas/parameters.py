"""`AdaNASClassifier`'s arguments: what each accepts, checked in one table.

`PARAMETER_CONSTRAINTS` maps every argument to its check, as
scikit-learn's `_parameter_constraints` does; `search_config` runs them all
(and the checks that tie two arguments together) and turns the arguments
into a typed `SearchConfig`. A check raises a `TypeError` (wrong kind) or a
`ValueError` (wrong value) naming the argument and what it received.
"""

import importlib.util
import math
import numbers
import os

import keras
import numpy as np

from keras_adanas.architecture import Architecture
from keras_adanas.distillation import Distillation
from keras_adanas.distribute import num_replicas, spans_workers
from keras_adanas.ensemble import MIXTURE_KINDS
from keras_adanas.generators import get_generator
from keras_adanas.io_utils import check_folder_path, plain_json
from keras_adanas.nasnet import resolve_dtype_policy
from keras_adanas.recipe import RECIPES
from keras_adanas.search.budget import parse_budget
from keras_adanas.search.config import IterationConfig, SearchConfig
from keras_adanas.search.distiller import MIXTURE_FITS
from keras_adanas.search.planner import parse_time_limit
from keras_adanas.search.sizing import default_architecture

MAX_SEED = 2**32 - 1
"""Seeds are 32-bit, as scikit-learn's `random_state`."""


def integer(minimum, maximum=None):
    """An int (NumPy's too, not a bool) in `[minimum, maximum]`."""

    def check(name, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
        if value < minimum:
            raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}")
        if maximum is not None and value > maximum:
            raise ValueError(f"`{name}` must be <= {maximum}. Received: {name}={value!r}")

    return check


def optional(check):
    """None, or what `check` accepts."""

    def check_optional(name, value):
        if value is not None:
            check(name, value)

    return check_optional


def boolean(name, value):
    """A bool (NumPy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")


def one_of(*choices, description=None):
    """One of `choices` (compared by value; a bool is not an int here)."""

    def check(name, value):
        matches = any(
            value == choice and isinstance(value, bool) == isinstance(choice, bool)
            for choice in choices
        )
        if not matches:
            expected = description or f"one of {choices}"
            raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")

    return check


def positive_number(name, value):
    """A finite real number > 0."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")


def number(name, value):
    """A real number (its range is checked where it is used)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")


def parsed_by(parse):
    """What `parse(value)` accepts (it raises naming the argument)."""

    def check(name, value):
        parse(value)

    return check


def synchronization(name, value):
    """True, False or `"auto"`."""
    if not (isinstance(value, (bool, np.bool_)) or value == "auto"):
        raise ValueError(f"`{name}` must be True, False or 'auto'. Received: {name}={value!r}")


def dtype_policy(name, value):
    """None, a policy name or a `keras.DTypePolicy`."""
    if value is None:
        return
    if not isinstance(value, (str, keras.DTypePolicy)):
        raise TypeError(
            f"`{name}` must be a policy name, a `keras.DTypePolicy` or None. "
            f"Received: {name}={value!r}"
        )
    resolve_dtype_policy(value, argument=name)


def folder(name, value):
    """None, or a path that is a folder or could be made one (not blank)."""
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path or None. Received: {name}={value!r}")
    if not os.fspath(value).strip():
        # The current folder, not a project folder of its own.
        raise ValueError(
            f"`{name}` must name a folder for the search's files; an empty "
            f"or blank path is not one. Received: {name}={value!r}"
        )
    check_folder_path(value, name)


def within(low, high, closed_low=True, closed_high=True):
    """A real number in the interval from `low` to `high`."""

    def check(name, value):
        number(name, value)
        above = value >= low if closed_low else value > low
        below = value <= high if closed_high else value < high
        if not (above and below and math.isfinite(value)):
            interval = f"{'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"
            raise ValueError(f"`{name}` must be in {interval}. Received: {name}={value!r}")

    return check


def anything(name, value):
    """Checked elsewhere (`strategy`: when `fit` resolves it)."""


PARAMETER_CONSTRAINTS = {
    "max_iterations": integer(1),
    "batch_size": integer(1),
    "epochs_per_iteration": optional(integer(1)),
    "steps_per_iteration": optional(integer(1)),
    "recipe": one_of(*RECIPES, description=f"one of {RECIPES}"),
    "learning_rate": optional(positive_number),
    "cutout_size": optional(integer(0)),
    "drop_path_keep_prob": optional(within(0.0, 1.0, closed_low=False)),
    "auxiliary_weight": optional(within(0.0, math.inf)),
    "label_smoothing": optional(within(0.0, 1.0, closed_high=False)),
    "weight_decay": optional(within(0.0, math.inf)),
    "warmup": optional(within(0.0, 1.0, closed_high=False)),
    "recompute_statistics": optional(boolean),
    "mixture_weights": one_of(*MIXTURE_KINDS, description=f"one of {MIXTURE_KINDS}"),
    "mixture_fit": optional(one_of(*MIXTURE_FITS, description=f"one of {MIXTURE_FITS}")),
    "augment": optional(boolean),
    "warm_start": boolean,
    "overwrite": boolean,
    "tensorboard": boolean,
    "verbose": one_of(0, 1, 2, description="0, 1 or 2"),
    "synchronized_batch_norm": synchronization,
    "jit_compile": one_of(True, False, "auto", description="True, False or 'auto'"),
    "dtype_policy": dtype_policy,
    "seed": optional(integer(0, MAX_SEED)),
    "directory": folder,
    "kd_temperature": number,
    "kd_weight": number,
    "architecture": optional(parsed_by(Architecture.parse)),
    "budget": parsed_by(parse_budget),
    "time_limit": parsed_by(parse_time_limit),
    "distillation": anything,  # with its temperature and weight, below
    "generator": anything,  # with the architecture, below
    "strategy": anything,
}


def validate_parameters(params):
    """Runs every check of `PARAMETER_CONSTRAINTS` on `params`, in order.

    Args:
        params: the dict of `AdaNASClassifier.get_params()`.

    Raises:
        TypeError, ValueError: naming the first argument that fails.
    """
    for name, check in PARAMETER_CONSTRAINTS.items():
        check(name, params[name])
    if params["epochs_per_iteration"] is not None and params["steps_per_iteration"] is not None:
        raise ValueError(
            "Pass one of `epochs_per_iteration` and `steps_per_iteration`. Received: "
            f"epochs_per_iteration={params['epochs_per_iteration']}, "
            f"steps_per_iteration={params['steps_per_iteration']}"
        )


def search_config(params):
    """Checks the arguments and derives the search's settings from them.

    Args:
        params: the dict of `AdaNASClassifier.get_params()`.

    Returns:
        A `SearchConfig`.

    Example:

    >>> config = search_config(AdaNASClassifier(architecture="1@24").get_params())
    >>> config.iteration.epochs, config.budget
    (1, None)
    """
    validate_parameters(params)
    time_limit = parse_time_limit(params["time_limit"])
    architecture = params["architecture"]
    if architecture is None:
        architecture = default_architecture(time_limit)
    epochs = params["epochs_per_iteration"]
    if epochs is None and params["steps_per_iteration"] is None:
        epochs = 1
    return SearchConfig(
        budget=parse_budget(params["budget"]),
        generator=get_generator(params["generator"], architecture),
        max_iterations=int(params["max_iterations"]),
        dtype_policy=params["dtype_policy"],
        tensorboard=bool(params["tensorboard"]),
        verbose=int(params["verbose"]),
        recipe=params["recipe"],
        time_limit=time_limit,
        recipe_overrides={
            "learning_rate": params["learning_rate"],
            "augment": params["augment"],
            "cutout_size": params["cutout_size"],
            "drop_path_keep_prob": params["drop_path_keep_prob"],
            "auxiliary_weight": params["auxiliary_weight"],
            "label_smoothing": params["label_smoothing"],
            "weight_decay": params["weight_decay"],
            "warmup": params["warmup"],
            "recompute_batch_statistics": params["recompute_statistics"],
            "mixture_fit": params["mixture_fit"],
        },
        iteration=IterationConfig(
            mixture_kind=params["mixture_weights"],
            distillation=Distillation(
                params["distillation"],
                float(params["kd_temperature"]),
                float(params["kd_weight"]),
            ),
            batch_size=int(params["batch_size"]),
            epochs=None if epochs is None else int(epochs),
            steps=None
            if params["steps_per_iteration"] is None
            else int(params["steps_per_iteration"]),
            seed=None if params["seed"] is None else int(params["seed"]),
            jit_compile=params["jit_compile"],
            synchronized_batch_norm=params["synchronized_batch_norm"],
        ),
    )


def check_with_strategy(params, strategy):
    """The checks of `params` that need the strategy (or a package).

    Args:
        params: the dict of `AdaNASClassifier.get_params()`.
        strategy: the resolved `tf.distribute.Strategy`, or None.
    """
    replicas = num_replicas(strategy)
    if params["batch_size"] % replicas:
        raise ValueError(
            f"`batch_size` is the global batch and must divide evenly among the "
            f"{replicas} replicas of the strategy. Received: "
            f"batch_size={params['batch_size']}"
        )
    if resolve_dtype_policy(params["dtype_policy"]).name == "mixed_float16" and replicas > 1:
        # Keras' LossScaleOptimizer decides whether to skip a step from each
        # replica's own gradients, while GroupedClippingSGD sums the replicas'
        # gradients inside `apply`: replicas could disagree on an overflow.
        raise ValueError(
            "`dtype_policy='mixed_float16'` (loss scaling) trains on one device "
            f"only; the strategy has {replicas} replicas. Use "
            "'mixed_bfloat16' or `strategy='default'`. Received: "
            f"dtype_policy={params['dtype_policy']!r}"
        )
    if params["time_limit"] is not None and strategy is not None and spans_workers(strategy):
        # Each worker would time its steps and stop by its own clock: workers
        # that stop a step apart wait on each other's collectives for ever.
        raise ValueError(
            "`time_limit` plans the search on one machine's clock and cannot be used "
            "with a strategy whose replicas span several workers. Give "
            "`epochs_per_iteration` and `max_iterations` instead. Received: "
            f"time_limit={params['time_limit']!r}"
        )
    if params["tensorboard"] and params["directory"] is None:
        raise ValueError(
            "`tensorboard=True` writes its logs under `directory`; pass one. "
            "Received: directory=None"
        )
    if params["tensorboard"] and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            "`tensorboard=True` needs the tensorboard package: "
            '`pip install "keras-adanas[tensorboard]"`. Received: tensorboard=True'
        )


def params_record(params):
    """The arguments as plain JSON (what `search.json` records): generator
    objects serialized, `N@F` normalized, NumPy scalars as Python numbers."""
    generator = params["generator"]
    if not isinstance(generator, str):
        params["generator"] = (
            keras.saving.serialize_keras_object(generator)
            if hasattr(generator, "get_config")
            else None
        )
    if not isinstance(params["strategy"], str):
        params["strategy"] = type(params["strategy"]).__name__
    if isinstance(params["dtype_policy"], keras.DTypePolicy):
        params["dtype_policy"] = params["dtype_policy"].name
    if params["architecture"] is not None:
        params["architecture"] = str(Architecture.parse(params["architecture"]))
    if params["directory"] is not None:
        params["directory"] = os.fspath(params["directory"])
    return plain_json(params)


# === Arguments of `fit` and `score` ===


def check_callbacks(callbacks):
    """`callbacks` as a list of `keras.callbacks.Callback` (None: an empty one)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, keras.callbacks.Callback) for c in callbacks
    ):
        raise TypeError(
            "`callbacks` must be a list of keras.callbacks.Callback. Received: "
            f"callbacks={callbacks!r}"
        )
    return list(callbacks)


def check_sample_weight(sample_weight, num_images):
    """`sample_weight` as a float array `(num_images,)`, or None."""
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype="float64")
    except (TypeError, ValueError):
        raise TypeError(
            "`sample_weight` must be numbers, one per image. Received: "
            f"sample_weight of type {type(sample_weight).__name__}"
        ) from None
    if weights.shape not in ((num_images,), (num_images, 1)):
        raise ValueError(
            f"`sample_weight` must hold one weight per image, shape ({num_images},). "
            f"Received: sample_weight.shape={weights.shape}"
        )
    weights = weights.reshape(num_images)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(
            "`sample_weight` must be finite and non-negative, and not all zero. "
            f"Received: values in [{weights.min()}, {weights.max()}], sum {weights.sum()}"
        )
    return weights
