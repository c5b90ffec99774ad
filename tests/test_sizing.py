"""The architecture a search starts from when the user names none."""

import json

from keras_adanas import AdaNASClassifier
from keras_adanas.architecture import Architecture
from keras_adanas.generators import DynamicGenerator
from keras_adanas.parameters import params_record, search_config
from keras_adanas.search.sizing import (
    PAPER_ARCHITECTURE,
    TIME_LIMITED_ARCHITECTURE,
    default_architecture,
)


def first_candidates(**arguments):
    config = search_config(AdaNASClassifier(**arguments).get_params())
    return [str(a) for a in config.generator.candidates([], 1)]


def test_without_a_time_limit_the_members_are_the_papers():
    assert PAPER_ARCHITECTURE == Architecture.parse("6@768")
    assert default_architecture(None) == PAPER_ARCHITECTURE
    assert first_candidates() == ["6@768"]
    assert first_candidates(budget="33.5M", max_iterations=10) == ["6@768"]


def test_a_time_limit_sizes_the_members_to_learn_within_it():
    assert default_architecture(600.0) == TIME_LIMITED_ARCHITECTURE
    assert TIME_LIMITED_ARCHITECTURE.depth == 1
    assert first_candidates(time_limit="10m") == [str(TIME_LIMITED_ARCHITECTURE)]
    # The dynamic generator starts from it too.
    start = TIME_LIMITED_ARCHITECTURE
    assert first_candidates(time_limit="2h", generator="dynamic") == [
        str(a) for a in DynamicGenerator(start).candidates([], 1)
    ]


def test_what_the_user_names_is_kept_under_a_time_limit():
    assert first_candidates(time_limit="10m", architecture="2@48") == ["2@48"]
    generator = DynamicGenerator("1@24", width_step=24)
    assert first_candidates(time_limit="10m", generator=generator) == ["2@24", "1@48"]


def test_search_json_records_the_unnamed_architecture_as_none():
    """A resumed search compares its arguments with the recorded ones: the
    unnamed architecture stays unnamed (sized anew from the same limit)."""
    record = params_record(AdaNASClassifier(time_limit="10m").get_params())
    assert json.loads(json.dumps(record))["architecture"] is None
    named = params_record(AdaNASClassifier(architecture=Architecture(2, 48)).get_params())
    assert named["architecture"] == "2@48"
