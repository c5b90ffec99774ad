"""The paper's configurations by name, as plain `AdaNASClassifier` arguments.

Each preset holds the arguments of one configuration of the AdaNAS paper
(DESIGN.md section 1) with its recipe: batch 32, learning rate 0.025 and 1M
training steps per iteration. The same arguments serve CIFAR-10 and CIFAR-100
(the number of classes comes from the data); `paper_error` gives the test error
the paper reports on each. Scale a preset down by overriding any argument, for
example `steps_per_iteration`.

Example:

>>> clf = AdaNASClassifier.from_preset("w-akd", steps_per_iteration=20_000)
>>> preset_arguments("smoke")["architecture"]
'1@24'
"""

import dataclasses
import types

from keras_adanas.generators import DynamicGenerator

PAPER_STEPS_PER_ITERATION = 1_000_000
PAPER_BUDGET = "33M"
# The dynamic generators run until the budget stops them.
UNTIL_BUDGET = 100


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named configuration.

    Attributes:
        name: str.
        description: str, one line.
        arguments: a read-only mapping of `AdaNASClassifier` arguments.
        paper_error: a read-only mapping `{"cifar10": %, "cifar100": %}` of
            the test error the paper reports (empty for `smoke` and `demo`).

    Example:

    >>> preset = get_preset("w-akd")
    >>> preset.description
    'G_C 6@768 x 10, adaptive distillation, learned scalar weights'
    >>> preset.paper_error["cifar10"]
    2.26
    """

    name: str
    description: str
    arguments: types.MappingProxyType
    paper_error: types.MappingProxyType


def _preset(name, description, paper_error=None, **arguments):
    recipe = {
        "recipe": "paper",
        "batch_size": 32,
        "learning_rate": 0.025,
        "steps_per_iteration": PAPER_STEPS_PER_ITERATION,
    }
    return Preset(
        name,
        description,
        types.MappingProxyType({**recipe, **arguments}),
        types.MappingProxyType(dict(paper_error or {})),
    )


def _constant(name, description, distillation, mixture_weights, errors):
    # 10 x 6@768 is 33.47M parameters: the paper's 33M budget means 10
    # iterations, so these fix the iterations rather than cut at 33,000,000.
    return _preset(
        name,
        description,
        errors,
        generator="constant",
        architecture="6@768",
        distillation=distillation,
        mixture_weights=mixture_weights,
        max_iterations=10,
        budget=None,
    )


def _dynamic(start, distillation, errors):
    kd = "nokd" if distillation == "none" else "akd"
    return _preset(
        f"dynamic-{start}-{kd}",
        f"G_D{start}: grow {start} deeper or wider until {PAPER_BUDGET} parameters, "
        f"{kd.upper()}, uniform weights",
        errors,
        generator="dynamic",
        architecture=start,
        distillation=distillation,
        mixture_weights="uniform",
        max_iterations=UNTIL_BUDGET,
        budget=PAPER_BUDGET,
    )


PRESETS = {
    preset.name: preset
    for preset in (
        _constant(
            "nokd",
            "G_C 6@768 x 10, no distillation, uniform weights",
            "none",
            "uniform",
            {"cifar10": 2.29, "cifar100": 14.58},
        ),
        _constant(
            "akd",
            "G_C 6@768 x 10, adaptive distillation, uniform weights",
            "adaptive",
            "uniform",
            {"cifar10": 2.30, "cifar100": 14.94},
        ),
        _constant(
            "ban",
            "G_C 6@768 x 10, born-again distillation, uniform weights",
            "born_again",
            "uniform",
            {"cifar10": 2.37, "cifar100": 15.03},
        ),
        _constant(
            "w-nokd",
            "G_C 6@768 x 10, no distillation, learned scalar weights",
            "none",
            "scalar",
            {"cifar10": 2.35, "cifar100": 14.87},
        ),
        _constant(
            "w-akd",
            "G_C 6@768 x 10, adaptive distillation, learned scalar weights",
            "adaptive",
            "scalar",
            {"cifar10": 2.26, "cifar100": 14.83},
        ),
        _dynamic("6@768", "none", {"cifar10": 3.23, "cifar100": 16.10}),
        _dynamic("6@768", "adaptive", {"cifar10": 3.09, "cifar100": 16.96}),
        _dynamic("1@240", "none", {"cifar10": 3.06, "cifar100": 15.55}),
        _dynamic("1@240", "adaptive", {"cifar10": 3.10, "cifar100": 15.31}),
        _preset(
            "smoke",
            "3 iterations of 1@24, adaptive distillation, scalar weights, 50 steps "
            "each: minutes on a CPU",
            generator="constant",
            architecture="1@24",
            distillation="adaptive",
            mixture_weights="scalar",
            max_iterations=3,
            steps_per_iteration=50,
            budget=None,
        ),
        _preset(
            "demo",
            "`keras-adanas demo`: the dynamic generator from 1@24 growing by 1 cell "
            "or 24 filters, adaptive distillation, scalar weights, 3 iterations of 3 "
            "epochs at batch 64",
            generator=DynamicGenerator("1@24", width_step=24),
            architecture="1@24",
            distillation="adaptive",
            mixture_weights="scalar",
            max_iterations=3,
            batch_size=64,
            learning_rate=0.05,
            steps_per_iteration=None,
            epochs_per_iteration=3,
            augment=False,  # Flips and crops do not suit digits.
            budget=None,
        ),
    )
}


def get_preset(name):
    """Returns the `Preset` called `name`.

    Args:
        name: str, one of the keys of `PRESETS`.

    Returns:
        A `Preset`.

    Raises:
        ValueError: for an unknown name, listing the known ones.

    Example:

    >>> get_preset("smoke").arguments["architecture"]
    '1@24'
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"`preset` must be one of {sorted(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name]


def preset_arguments(name, **overrides):
    """The arguments of preset `name`, updated with `overrides`.

    Epochs and steps are one setting: overriding `epochs_per_iteration`
    drops the preset's `steps_per_iteration`, and the other way round.

    Args:
        name: str, a preset name (`get_preset`).
        **overrides: `AdaNASClassifier` arguments that replace the preset's.

    Returns:
        A new dict of `AdaNASClassifier` arguments.

    Example:

    >>> classifier = AdaNASClassifier(**preset_arguments("smoke", seed=1))
    """
    arguments = dict(get_preset(name).arguments)
    for given, replaced in (
        ("epochs_per_iteration", "steps_per_iteration"),
        ("steps_per_iteration", "epochs_per_iteration"),
    ):
        if overrides.get(given) is not None and replaced not in overrides:
            arguments[replaced] = None
    return {**arguments, **overrides}
