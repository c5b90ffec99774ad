"""The architecture a search starts from when the user names none.

Without a time limit it is DESIGN's 6@768, the paper's CIFAR-10 member. With
one, it is `TIME_LIMITED_ARCHITECTURE`, a network that learns within minutes
on a CPU: one cell per stack, since a step's time grows with the cells
far more than with the width. A longer limit then grows the ensemble, not the
member: the planner (`keras_adanas.search.planner`) plans as many members as
the limit gives each `MIN_EPOCHS_PER_MEMBER` epochs. The measurements behind
the choice are in benchmarks/README.md ("Sizing a time-limited search").
What the user names (an architecture, a generator object) is kept.
"""

from keras_adanas.architecture import Architecture

PAPER_ARCHITECTURE = Architecture(6, 768)
"""The members of a search with no time limit: DESIGN's 6@768."""

TIME_LIMITED_ARCHITECTURE = Architecture(1, 192)
"""The members of a time-limited search that names no architecture."""


def default_architecture(time_limit):
    """The architecture a search starts from when none is named.

    Args:
        time_limit: float seconds, or None for a search without a limit.

    Returns:
        An `Architecture`.

    Example:

    >>> str(default_architecture(None)), str(default_architecture(600.0))
    ('6@768', '1@192')
    """
    return PAPER_ARCHITECTURE if time_limit is None else TIME_LIMITED_ARCHITECTURE
