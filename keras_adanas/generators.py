"""Generators: which candidate architectures each AdaNAS iteration trains."""

from typing import Protocol, runtime_checkable

import keras

from keras_adanas.architecture import FILTER_MULTIPLE, Architecture


@runtime_checkable
class Generator(Protocol):
    """What the search asks of a generator.

    A generator is any object with a `candidates(previous, iteration)` method.
    It must be deterministic: the same arguments give the same candidates (a
    resumed search relies on it).

    Example:

    >>> class Deeper:  # one candidate, a cell deeper than the last member
    ...     def candidates(self, previous, iteration):
    ...         last = previous[-1] if previous else Architecture(1, 24)
    ...         return [Architecture(last.depth + 1, last.filters)]
    >>> classifier = AdaNASClassifier(generator=Deeper(), max_iterations=3)
    """

    def candidates(self, previous, iteration):
        """Returns the architectures to train at `iteration`.

        Args:
            previous: list of `Architecture`, the members chosen so far, in
                order (empty at iteration 1).
            iteration: int, the 1-based iteration about to run.

        Returns:
            A non-empty list of `Architecture`.
        """
        ...


class _SerializableGenerator:
    """`from_config`, equality and repr from `get_config()`."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()


@keras.saving.register_keras_serializable(package="keras_adanas")
class ConstantGenerator(_SerializableGenerator):
    """Proposes the same architecture every iteration (the paper's G_C).

    Args:
        architecture: an `Architecture` or an `"N@F"` string.

    Example:

    >>> ConstantGenerator("6@768").candidates([], 1)
    [Architecture(depth=6, filters=768)]
    """

    def __init__(self, architecture="6@768"):
        self.architecture = Architecture.parse(architecture)

    def candidates(self, previous, iteration):
        return [self.architecture]

    def get_config(self):
        return {"architecture": str(self.architecture)}


@keras.saving.register_keras_serializable(package="keras_adanas")
class DynamicGenerator(_SerializableGenerator):
    """Grows the last chosen architecture deeper and wider (the paper's G_D).

    Iteration 1 proposes the deeper and the wider neighbours of `start`
    (6@768 -> 7@768 and 6@1008); each later iteration proposes the neighbours
    of the member chosen last. With `include_previous=True` the base
    architecture itself (`start` at iteration 1, then the last chosen) is
    proposed first as well.

    Args:
        start: an `Architecture` or an `"N@F"` string.
        depth_step: int >= 1, normal cells per stack added by "deeper".
        width_step: int, a positive multiple of 24, filters added by "wider".
        include_previous: bool, whether to propose the base architecture too.

    Example:

    >>> generator = DynamicGenerator("6@768")
    >>> [str(a) for a in generator.candidates([], 1)]
    ['7@768', '6@1008']
    """

    def __init__(self, start="6@768", depth_step=1, width_step=240, include_previous=False):
        self.start = Architecture.parse(start)
        for name, value in (("depth_step", depth_step), ("width_step", width_step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
        if width_step % FILTER_MULTIPLE:
            raise ValueError(
                f"`width_step` must be a multiple of {FILTER_MULTIPLE} (F stays a "
                f"multiple of {FILTER_MULTIPLE}). Received: width_step={width_step}"
            )
        self.depth_step = depth_step
        self.width_step = width_step
        self.include_previous = bool(include_previous)

    def candidates(self, previous, iteration):
        base = Architecture.parse(previous[-1]) if previous else self.start
        proposals = [base.deeper(self.depth_step), base.wider(self.width_step)]
        return [base, *proposals] if self.include_previous else proposals

    def get_config(self):
        return {
            "start": str(self.start),
            "depth_step": self.depth_step,
            "width_step": self.width_step,
            "include_previous": self.include_previous,
        }


GENERATORS = {"constant": ConstantGenerator, "dynamic": DynamicGenerator}


def get_generator(generator, architecture):
    """Resolves the classifier's `generator` argument.

    Args:
        generator: `"constant"`, `"dynamic"`, or an object with a
            `candidates(previous, iteration)` method.
        architecture: the architecture a named generator starts from.

    Returns:
        A generator.
    """
    if isinstance(generator, str):
        if generator not in GENERATORS:
            raise ValueError(
                f"`generator` must be one of {sorted(GENERATORS)} or a generator "
                f"object. Received: generator={generator!r}"
            )
        return GENERATORS[generator](architecture)
    if not isinstance(generator, Generator):
        raise TypeError(
            "`generator` must be a name or an object with a "
            "`candidates(previous, iteration)` method. Received: "
            f"generator={generator!r} of type {type(generator).__name__}"
        )
    return generator


def propose(generator, previous, iteration):
    """Calls the generator and checks what it returns."""
    proposals = generator.candidates(list(previous), iteration)
    try:
        proposals = [Architecture.parse(a) for a in proposals]
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"The generator {generator!r} proposed an invalid architecture at "
            f"iteration {iteration}: {error}"
        ) from None
    if not proposals:
        raise ValueError(
            f"The generator {generator!r} proposed no candidate at iteration {iteration}."
        )
    return proposals
