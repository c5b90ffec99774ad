import keras
import pytest

from keras_adanas import Architecture, ConstantGenerator, DynamicGenerator, Generator
from keras_adanas.generators import get_generator, propose


def names(architectures):
    return [str(a) for a in architectures]


def test_constant_generator():
    generator = ConstantGenerator("6@768")
    assert isinstance(generator, Generator)
    for iteration in (1, 2, 10):
        assert names(generator.candidates([], iteration)) == ["6@768"]


def test_dynamic_generator_sequence():
    generator = DynamicGenerator("6@768")
    assert names(generator.candidates([], 1)) == ["7@768", "6@1008"]
    # Later iterations grow the member chosen last.
    chosen = [Architecture.parse("6@1008")]
    assert names(generator.candidates(chosen, 2)) == ["7@1008", "6@1248"]
    chosen.append(Architecture.parse("7@1008"))
    assert names(generator.candidates(chosen, 3)) == ["8@1008", "7@1248"]


def test_dynamic_generator_g_d_1_at_240_and_include_previous():
    assert names(DynamicGenerator("1@240").candidates([], 1)) == ["2@240", "1@480"]
    generator = DynamicGenerator("6@768", include_previous=True)
    assert names(generator.candidates([], 1)) == ["6@768", "7@768", "6@1008"]
    assert names(generator.candidates(["7@768"], 2)) == ["7@768", "8@768", "7@1008"]
    custom = DynamicGenerator("1@24", depth_step=2, width_step=48)
    assert names(custom.candidates([], 1)) == ["3@24", "1@72"]


def test_generators_are_deterministic_and_serializable():
    generator = DynamicGenerator("2@48", width_step=24, include_previous=True)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(generator))
    assert restored == generator
    assert names(restored.candidates(["3@48"], 2)) == names(generator.candidates(["3@48"], 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width_step": 10}, "width_step=10"),
        ({"width_step": 0}, "width_step=0"),
        ({"depth_step": 0}, "depth_step=0"),
        ({"start": "0@24"}, "depth=0"),
    ],
)
def test_invalid_dynamic_generator(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicGenerator(**kwargs)


class HalvingGenerator:
    """A user-written generator: any object with `candidates`."""

    def candidates(self, previous, iteration):
        return [f"1@{24 * iteration}"]


def test_user_generators_and_names():
    assert isinstance(get_generator(HalvingGenerator(), "1@24"), HalvingGenerator)
    assert names(propose(HalvingGenerator(), [], 3)) == ["1@72"]
    assert isinstance(get_generator("dynamic", "1@24"), DynamicGenerator)
    with pytest.raises(ValueError, match="generator='random'"):
        get_generator("random", "1@24")
    with pytest.raises(TypeError, match="candidates"):
        get_generator(42, "1@24")


def test_propose_checks_what_a_generator_returns():
    class Empty:
        def candidates(self, previous, iteration):
            return []

    class Broken:
        def candidates(self, previous, iteration):
            return ["6@25"]

    with pytest.raises(ValueError, match="proposed no candidate"):
        propose(Empty(), [], 1)
    with pytest.raises(ValueError, match="invalid architecture"):
        propose(Broken(), [], 1)
