import pytest

from keras_adanas import Architecture


def test_parse_and_format():
    arch = Architecture.parse("6@768")
    assert (arch.depth, arch.filters) == (6, 768)
    assert str(arch) == "6@768"
    assert Architecture.parse(" 2 @ 192 ") == Architecture(2, 192)
    assert Architecture.parse((1, 24)) == Architecture(1, 24)
    assert Architecture.parse(arch) is arch
    assert arch.stem_filters == 32 and arch.num_cells == 18


def test_deeper_and_wider():
    arch = Architecture.parse("6@768")
    assert str(arch.deeper()) == "7@768"
    assert str(arch.wider()) == "6@1008"
    assert str(Architecture.parse("1@240").wider()) == "1@480"
    assert str(arch.deeper(2).wider(24)) == "8@792"


@pytest.mark.parametrize(
    "value, error, message",
    [
        ("0@768", ValueError, "depth=0"),
        ("6@100", ValueError, "filters=100"),
        ("6@0", ValueError, "filters=0"),
        ("6x768", ValueError, "'N@F'"),
        ("", ValueError, "'N@F'"),
        (6.5, TypeError, "architecture=6.5"),
        ((6, "768"), TypeError, "filters='768'"),
    ],
)
def test_invalid_architectures(value, error, message):
    with pytest.raises(error, match=message):
        Architecture.parse(value)


def test_wider_step_must_keep_multiple_of_24():
    with pytest.raises(ValueError, match="multiple of 24"):
        Architecture.parse("6@768").wider(10)


def test_reference_count_without_building():
    # DESIGN.md section 2 (ref): NASNet-A 6@768, 10 classes, no auxiliary head.
    assert Architecture.parse("6@768").count_params(10) == 3_346_538


def test_ten_6_at_768_members_are_33_47m():
    # DESIGN.md section 1: 10 x 6@768 is 33.47M trainable parameters.
    assert 10 * Architecture.parse("6@768").count_params(10) == 33_465_380
