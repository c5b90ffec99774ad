"""The recipe: the paper's exactly where asked, each knob an argument, and
each applied where a member trains."""

import dataclasses

import numpy as np
import pytest

import keras_adanas.search.iteration as iteration_module
from keras_adanas import AdaNASClassifier, load_images
from keras_adanas.parameters import search_config
from keras_adanas.presets import PRESETS
from keras_adanas.recipe import (
    PAPER_RECIPE,
    PAPER_RUN_EPOCHS,
    SHORT_RUN_EPOCHS,
    SHORT_RUN_RECIPE,
    Recipe,
    learning_rate_schedule,
    recipe_for,
    resolve_recipe,
)
from keras_adanas.search import IterationConfig, build_candidates, train_candidates

PAPER_PRESETS = [name for name in PRESETS if name not in ("smoke", "demo")]


def test_the_paper_recipe_is_the_papers():
    assert PAPER_RECIPE == Recipe(
        learning_rate=0.025,
        cutout=0.5,
        augment=True,
        drop_path_keep_prob=0.6,
        auxiliary_weight=0.4,
        label_smoothing=0.1,
        weight_decay=5e-4,
        warmup=0.0,
        recompute_batch_statistics=False,
        mixture_fit="training",
    )
    assert PAPER_RECIPE.cutout_size((32, 32, 3)) == 16


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_every_paper_preset_trains_with_the_paper_recipe(name):
    config = search_config(AdaNASClassifier.from_preset(name).get_params())
    for examples, shape in [(50_000, (32, 32, 3)), (5_000, (32, 32, 3)), (1_437, (16, 16, 1))]:
        resolved = config.for_data(examples, shape).iteration.recipe
        assert resolved == PAPER_RECIPE


def test_each_knob_replaces_the_recipes_value():
    knobs = dict(
        learning_rate=0.1,
        augment=True,
        cutout_size=8,
        drop_path_keep_prob=1.0,
        auxiliary_weight=0.0,
        label_smoothing=0.0,
        weight_decay=2e-4,
        warmup=0.1,
        recompute_statistics=True,
    )
    params = AdaNASClassifier(recipe="paper", steps_per_iteration=10, **knobs).get_params()
    recipe = search_config(params).for_data(320, (32, 32, 3)).iteration.recipe
    assert recipe == Recipe(
        learning_rate=0.1,
        cutout=0.25,
        augment=True,
        drop_path_keep_prob=1.0,
        auxiliary_weight=0.0,
        label_smoothing=0.0,
        weight_decay=2e-4,
        warmup=0.1,
        recompute_batch_statistics=True,
    )
    assert recipe.cutout_size((32, 32, 3)) == 8
    assert resolve_recipe("paper", 1, (32, 32, 3), cutout_size=0).cutout_size((32, 32, 3)) == 0


def test_the_auto_recipe_follows_the_run_and_the_images():
    params = AdaNASClassifier(epochs_per_iteration=10).get_params()
    resolved = search_config(params).for_data(5_000, (32, 32, 3)).iteration.recipe
    assert resolved == recipe_for(10, (32, 32, 3))
    # Steps are counted in passes over the data: 1,000 steps at batch 32 on
    # 4,000 images are 8 epochs.
    params = AdaNASClassifier(steps_per_iteration=1_000).get_params()
    resolved = search_config(params).for_data(4_000, (28, 28, 1)).iteration.recipe
    assert resolved == recipe_for(8, (28, 28, 1))


def test_ten_epoch_members_train_with_a_high_rate_and_weight_decay_alone():
    assert SHORT_RUN_EPOCHS == 10
    assert (
        recipe_for(10, (32, 32, 3))
        == SHORT_RUN_RECIPE
        == Recipe(
            learning_rate=0.2,
            cutout=0.0,
            augment=True,
            drop_path_keep_prob=1.0,
            auxiliary_weight=0.0,
            label_smoothing=0.0,
            weight_decay=1e-3,
            warmup=0.0,
            recompute_batch_statistics=True,
            mixture_fit="refit",
        )
    )


@pytest.mark.parametrize("epochs", [0.5, 2, 5])
def test_shorter_members_train_as_ten_epoch_ones(epochs):
    assert recipe_for(epochs, (32, 32, 3)) == SHORT_RUN_RECIPE


@pytest.mark.parametrize("epochs", [PAPER_RUN_EPOCHS, 10 * PAPER_RUN_EPOCHS])
def test_long_runs_train_with_the_papers_rate_and_regularisers(epochs):
    recipe = recipe_for(epochs, (32, 32, 3))
    assert recipe == dataclasses.replace(
        PAPER_RECIPE, recompute_batch_statistics=True, mixture_fit="refit"
    )


def test_runs_in_between_move_in_proportion_to_the_log_of_the_epochs():
    # 77.46 epochs lie half-way between 10 and 600 on a log scale.
    halfway = (SHORT_RUN_EPOCHS * PAPER_RUN_EPOCHS) ** 0.5
    recipe = recipe_for(halfway, (32, 32, 3))
    assert recipe.learning_rate == pytest.approx((0.2 + 0.025) / 2)
    assert recipe.cutout == pytest.approx(0.25)
    assert recipe.drop_path_keep_prob == pytest.approx(0.8)
    assert recipe.auxiliary_weight == pytest.approx(0.2)
    assert recipe.label_smoothing == pytest.approx(0.05)
    assert recipe.weight_decay == pytest.approx((1e-3 + 5e-4) / 2)
    assert recipe.cutout_size((32, 32, 3)) == 8
    assert recipe_for(30, (32, 32, 3)).learning_rate < 0.2


@pytest.mark.parametrize(
    "shape, augments",
    [((32, 32, 3), True), ((64, 48, 3), True), ((16, 16, 1), False), ((28, 28, 1), False)],
)
def test_grayscale_images_train_unaugmented(shape, augments):
    for epochs in (2, 100, 600):
        assert recipe_for(epochs, shape).augment is augments


def test_a_time_limited_search_takes_the_short_run_recipe():
    params = AdaNASClassifier(time_limit="10m", epochs_per_iteration=900).get_params()
    resolved = search_config(params).for_data(5_000, (32, 32, 3)).iteration.recipe
    assert resolved == recipe_for(None, (32, 32, 3)) == SHORT_RUN_RECIPE


def test_warmup_rises_linearly_then_decays():
    schedule = learning_rate_schedule(100, 32, 0.1, warmup=0.1)
    assert [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100)] == [
        0.0,
        0.05,
        0.1,
        0.05,
        0.0,
    ]
    plain = learning_rate_schedule(100, 32, 0.1)
    assert float(plain(0)) == pytest.approx(0.1)


def test_a_search_trains_each_member_with_its_recipe(cifar10_path, monkeypatch):
    recomputed = []
    monkeypatch.setattr(
        iteration_module,
        "recompute_batch_statistics",
        lambda model, images: recomputed.append((model.name, len(images))),
    )
    data = load_images(cifar10_path)
    train = load_images(data.images[:64], data.labels[:64], classes=data.classes)
    recipe = dataclasses.replace(
        PAPER_RECIPE,
        drop_path_keep_prob=1.0,
        auxiliary_weight=0.25,
        label_smoothing=0.05,
        warmup=0.5,
        recompute_batch_statistics=True,
        cutout=0.25,
        weight_decay=2e-4,
    )
    config = IterationConfig(epochs=None, steps=4, batch_size=16, seed=0, recipe=recipe)
    candidates = build_candidates(
        ["1@24"],
        10,
        (32, 32, 3),
        1,
        seed=0,
        drop_path_keep_prob=recipe.drop_path_keep_prob,
        weight_decay=recipe.weight_decay,
    )
    trained = train_candidates(1, candidates, train, config)
    distiller = trained.distiller
    assert distiller.auxiliary_weight == 0.25
    assert distiller.candidate_loss.label_smoothing == 0.05
    schedule = distiller.optimizer.get_config()["learning_rate"]["config"]
    assert schedule["warmup_steps"] == 2  # half of the 4 steps
    assert schedule["warmup_target"] == pytest.approx(0.0125)  # 0.025 at batch 32, 16 here
    assert candidates[0].drop_path_keep_prob == 1.0
    # The reference's d * sum(w**2) / 2 is Keras' L2(d / 2), on every kernel.
    assert candidates[0].get_layer("stem_conv").kernel_regularizer.l2 == pytest.approx(1e-4)
    assert recomputed == [(candidates[0].name, 64)]
    assert np.isfinite(trained.train_losses[0])
