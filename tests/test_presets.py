import pytest

from keras_adanas import AdaNASClassifier, Architecture, parse_budget
from keras_adanas.generators import get_generator
from keras_adanas.parameters import search_config
from keras_adanas.presets import PRESETS, get_preset, preset_arguments

SIX_AT_768 = 3_346_538  # DESIGN.md section 2, 10 classes


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_classifier(name):
    clf = AdaNASClassifier.from_preset(name)
    config = search_config(clf.get_params())
    if name == "demo":  # digits: epochs at batch 64, no augmentation
        assert config.iteration.epochs == 3 and clf.batch_size == 64 and clf.augment is False
        assert [str(a) for a in config.generator.candidates([], 1)] == ["2@24", "1@48"]
        return
    assert clf.get_params()["batch_size"] == 32
    assert config.iteration.epochs is None and clf.steps_per_iteration >= 50


@pytest.mark.parametrize("name", ["nokd", "akd", "ban", "w-nokd", "w-akd"])
def test_constant_presets_are_ten_6_at_768_members(name):
    arguments = preset_arguments(name)
    assert arguments["max_iterations"] == 10 and arguments["budget"] is None
    assert arguments["steps_per_iteration"] == 1_000_000
    generator = get_generator(arguments["generator"], arguments["architecture"])
    proposals = [generator.candidates([], i)[0] for i in range(1, 11)]
    assert sum(a.count_params(10) for a in proposals) == 10 * SIX_AT_768 == 33_465_380
    weights = {"nokd": "uniform", "akd": "uniform", "ban": "uniform"}.get(name, "scalar")
    assert arguments["mixture_weights"] == weights


def test_the_paper_table():
    errors = {name: dict(PRESETS[name].paper_error) for name in PRESETS}
    assert errors["w-akd"] == {"cifar10": 2.26, "cifar100": 14.83}
    assert errors["nokd"] == {"cifar10": 2.29, "cifar100": 14.58}
    assert errors["dynamic-1@240-akd"] == {"cifar10": 3.10, "cifar100": 15.31}
    assert errors["smoke"] == {}
    assert preset_arguments("ban")["distillation"] == "born_again"
    assert preset_arguments("dynamic-6@768-akd")["distillation"] == "adaptive"


@pytest.mark.parametrize(
    "start, first", [("6@768", ["7@768", "6@1008"]), ("1@240", ["2@240", "1@480"])]
)
def test_dynamic_presets_grow_until_the_33m_budget(start, first):
    for kd in ("nokd", "akd"):
        arguments = preset_arguments(f"dynamic-{start}-{kd}")
        assert parse_budget(arguments["budget"]) == 33_000_000
        assert arguments["max_iterations"] >= 50  # the budget stops the search
        generator = get_generator(arguments["generator"], arguments["architecture"])
        proposals = generator.candidates([], 1)
        assert [str(a) for a in proposals] == first
        assert all(a.count_params(100) < 33_000_000 for a in proposals)


def test_overrides_replace_preset_arguments():
    clf = AdaNASClassifier.from_preset("w-akd", steps_per_iteration=200, directory="runs/x")
    assert clf.steps_per_iteration == 200 and clf.directory == "runs/x"
    assert clf.mixture_weights == "scalar" and clf.distillation == "adaptive"
    assert get_preset("w-akd").arguments["steps_per_iteration"] == 1_000_000  # unchanged
    with pytest.raises(TypeError, match=r"Unknown AdaNASClassifier arguments: \['step'\]"):
        AdaNASClassifier.from_preset("smoke", step=3)
    with pytest.raises(ValueError, match="preset='nasnet'"):
        AdaNASClassifier.from_preset("nasnet")
    with pytest.raises(TypeError):
        get_preset("smoke").arguments["budget"] = 1  # read-only


def test_smoke_is_small():
    arguments = preset_arguments("smoke")
    architecture = Architecture.parse(arguments["architecture"])
    assert architecture.count_params(10) < 10_000
    assert arguments["max_iterations"] * arguments["steps_per_iteration"] <= 200
