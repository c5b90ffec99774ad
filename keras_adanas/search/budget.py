"""The parameter budget: parsing it, and which candidates fit under it."""

import dataclasses
import numbers
import re

from keras_adanas.generators import propose

_BUDGET_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGbB]?)\s*$")
_BUDGET_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def parse_budget(budget):
    """Parses a parameter budget: an int, or a string like `"33M"`, `"3.3M"`, `"500k"`.

    Args:
        budget: None (no budget), a positive int, or a str: a number with an
            optional unit, `k` (thousand), `M` (million) or `G`/`B`
            (billion), in either case; commas and underscores are ignored.

    Returns:
        An int, or None for no budget.

    Example:

    >>> parse_budget("3.3M"), parse_budget("500k"), parse_budget("1_000")
    (3300000, 500000, 1000)
    """
    if budget is None:
        return None
    if isinstance(budget, bool):
        raise TypeError(
            f"`budget` must be an int or a string like '33M'. Received: budget={budget!r}"
        )
    if isinstance(budget, numbers.Integral):
        value = int(budget)
    elif isinstance(budget, str):
        match = _BUDGET_PATTERN.match(budget.replace(",", "").replace("_", ""))
        if not match:
            raise ValueError(
                "`budget` must be a parameter count like 3346538, '33M', '3.3M' or "
                f"'500k'. Received: budget={budget!r}"
            )
        value = int(round(float(match.group(1)) * _BUDGET_UNITS[match.group(2).lower()]))
    else:
        raise TypeError(
            "`budget` must be an int or a string like '33M'. Received: "
            f"budget={budget!r} of type {type(budget).__name__}"
        )
    if value < 1:
        raise ValueError(f"`budget` must be positive. Received: budget={budget!r}")
    return value


def mixture_params(kind, num_members, num_classes):
    """Parameters of the mixture weights of an ensemble of `num_members`."""
    return {"uniform": 0, "scalar": num_members, "vector": num_members * num_classes}[kind]


@dataclasses.dataclass(frozen=True)
class Proposal:
    """An iteration's proposed candidates, split by the budget.

    Attributes:
        fitting: list of `Architecture` that fit.
        over_budget: list of `(Architecture, served parameters)` that do not.
    """

    fitting: list
    over_budget: list


def propose_within_budget(generator, previous, iteration, budget, mixture_kind, data_shape):
    """The generator's candidates for `iteration`, split by the budget.

    A candidate fits when the members so far, the candidate and the mixture
    weights of the ensemble it would make hold at most `budget` parameters.

    Args:
        generator: a generator (`keras_adanas.generators`).
        previous: list of the members' `Architecture`s.
        iteration: int, 1-based.
        budget: int or None (no budget).
        mixture_kind: `"uniform"`, `"scalar"` or `"vector"`.
        data_shape: `(num_classes, image_shape)`.

    Returns:
        A `Proposal`.

    Example:

    >>> propose_within_budget(ConstantGenerator("1@24"), [], 1, 10**6, "scalar", (10, (32, 32, 3)))
    Proposal(fitting=[Architecture(depth=1, filters=24)], over_budget=[])
    """
    num_classes, image_shape = data_shape
    proposals = propose(generator, previous, iteration)
    if budget is None:
        return Proposal(list(proposals), [])
    used = sum(a.count_params(num_classes, image_shape=image_shape) for a in previous)
    used += mixture_params(mixture_kind, len(previous) + 1, num_classes)
    counts = [a.count_params(num_classes, image_shape=image_shape) for a in proposals]
    return Proposal(
        [a for a, c in zip(proposals, counts, strict=True) if used + c <= budget],
        [(a, c) for a, c in zip(proposals, counts, strict=True) if used + c > budget],
    )


def check_first_candidate_fits(config, data_shape, received):
    """Refuses a budget below every first candidate, before anything trains.

    Args:
        config: a `SearchConfig`.
        data_shape: `(num_classes, image_shape)`.
        received: the `budget` argument as given, for the message.

    Raises:
        ValueError: no first candidate fits.
    """
    if config.budget is None:
        return
    proposal = propose_within_budget(
        config.generator, [], 1, config.budget, config.iteration.mixture_kind, data_shape
    )
    if not proposal.fitting:
        smallest = min(count for _, count in proposal.over_budget)
        raise ValueError(
            f"`budget` is below the smallest first candidate ({smallest:,} "
            f"parameters with mixture weights: "
            f"{', '.join(f'{a} ({c:,})' for a, c in proposal.over_budget)}). "
            f"Received: budget={received!r}"
        )
