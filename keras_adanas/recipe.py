"""The NASNet-A CIFAR training recipe (docs/design.md section 3), as Keras objects.

SGD with momentum 0.9, learning rate 0.025 at batch 32 scaled linearly with
the global batch, cosine decay to 0 over the steps, gradients clipped to global
norm 5; cross-entropy with label smoothing 0.1 on the logits and 0.4 times the
same on the auxiliary logits; scheduled drop path to 0.6; pad, crop, flip and
a 16x16 cutout on 32x32 images. `Recipe` holds the settings that a run's
length calls for changing (`PAPER_RECIPE` is the paper's).
"""

import dataclasses
import math

import keras

from keras_adanas.nasnet import AUX_LOGITS, LOGITS, NASNetA, set_drop_path_schedule
from keras_adanas.nasnet.ops import DROP_PATH_KEEP_PROB, WEIGHT_DECAY

BASE_LEARNING_RATE = 0.025
BASE_BATCH_SIZE = 32
MOMENTUM = 0.9
CLIP_NORM = 5.0
LABEL_SMOOTHING = 0.1
AUXILIARY_LOSS_WEIGHT = 0.4
CUTOUT_FRACTION = 0.5
"""The cutout's side over the image's shorter side: 16 of 32 in the paper."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How each member trains: the settings a run's length calls for.

    Attributes:
        learning_rate: float, the learning rate at batch 32 (scaled linearly
            with the batch), cosine-decayed to 0 over each member's steps.
        cutout: float in [0, 1], the cutout square's side over the shorter
            image side (0: no cutout).
        augment: bool, whether to pad, crop and flip (and cut out).
        drop_path_keep_prob: float in (0, 1], the last cell's keep
            probability at the end of the drop-path schedule (1: none).
        auxiliary_weight: float >= 0, the auxiliary head's loss weight (0:
            a search's candidates train without the head).
        label_smoothing: float in [0, 1).
        weight_decay: float >= 0, the L2 decay `d` of every kernel, the
            reference's `d * sum(w**2) / 2` (`NASNetA(weight_decay=...)`).
        warmup: float in [0, 1), the fraction of each member's steps over
            which the learning rate rises linearly from 0.
        recompute_batch_statistics: bool, whether each member's batch-norm
            moving statistics are recomputed on the training images after it
            trains, before the selection (`keras_adanas.nasnet.recompute_batch_statistics`).
        mixture_fit: how learned mixture weights are fitted: `"training"`
            (in each step, on the candidate's training-mode logits: the
            paper), `"inference"` (in each step, on a stop-gradient
            inference-mode pass of the candidate) or `"refit"` (after
            training, on the selection data's served logits); see
            `keras_adanas.search.Distiller`.

    Example:

    >>> PAPER_RECIPE.learning_rate, PAPER_RECIPE.cutout
    (0.025, 0.5)
    """

    learning_rate: float = BASE_LEARNING_RATE
    cutout: float = CUTOUT_FRACTION
    augment: bool = True
    drop_path_keep_prob: float = DROP_PATH_KEEP_PROB
    auxiliary_weight: float = AUXILIARY_LOSS_WEIGHT
    label_smoothing: float = LABEL_SMOOTHING
    weight_decay: float = WEIGHT_DECAY
    warmup: float = 0.0
    recompute_batch_statistics: bool = False
    mixture_fit: str = "training"

    def cutout_size(self, image_shape):
        """The cutout's side in pixels on images of `image_shape` (0: none)."""
        if not self.augment or self.cutout <= 0:
            return 0
        side = min(int(image_shape[0]), int(image_shape[1]))
        return max(1, int(self.cutout * side + 0.5))


PAPER_RECIPE = Recipe()
"""The paper's recipe, exactly (every paper preset trains with it)."""


def scaled_learning_rate(batch_size, base_learning_rate=BASE_LEARNING_RATE):
    """`base_learning_rate * batch_size / 32`: the linear scaling rule."""
    return float(base_learning_rate) * int(batch_size) / BASE_BATCH_SIZE


def learning_rate_schedule(
    total_steps, batch_size, base_learning_rate=BASE_LEARNING_RATE, warmup=0.0
):
    """The scaled learning rate, cosine-decayed to 0 over `total_steps`.

    With `warmup`, the first `warmup * total_steps` steps rise linearly from
    0 to the scaled rate (Keras' `CosineDecay` warm-up), and the decay takes
    the rest.
    """
    if int(total_steps) < 1:
        raise ValueError(f"`total_steps` must be >= 1. Received: total_steps={total_steps}")
    rate = scaled_learning_rate(batch_size, base_learning_rate)
    warmup_steps = int(float(warmup) * int(total_steps))
    if not warmup_steps:
        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=int(total_steps), alpha=0.0)
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=int(total_steps) - warmup_steps,
        alpha=0.0,
        warmup_target=rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(total_steps, batch_size, base_learning_rate=BASE_LEARNING_RATE, warmup=0.0):
    """SGD, momentum 0.9, cosine decay to 0 over `total_steps`, clip norm 5.

    Args:
        total_steps: int, optimizer steps of the whole run.
        batch_size: int, the global batch size.
        base_learning_rate: float, the learning rate at batch 32.
        warmup: float, the fraction of the steps of linear warm-up.

    Returns:
        A `keras.optimizers.SGD`.
    """
    schedule = learning_rate_schedule(total_steps, batch_size, base_learning_rate, warmup)
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=MOMENTUM, global_clipnorm=CLIP_NORM
    )


@keras.saving.register_keras_serializable(package="keras_adanas")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy of integer labels against logits, with label smoothing.

    The target of label `y` is `(1 - s) * one_hot(y) + s / K`. Keras'
    `SparseCategoricalCrossentropy` has no label smoothing; this one-hot
    encodes and defers to `keras.losses.categorical_crossentropy`.

    Args:
        label_smoothing: float in [0, 1).
        **kwargs: base loss arguments (`name`, `reduction`, ...).
    """

    def __init__(self, label_smoothing=LABEL_SMOOTHING, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing}"
            )
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[-1]
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        targets = keras.ops.one_hot(labels, num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config


def compile_subnetwork(
    model,
    total_steps,
    batch_size,
    base_learning_rate=None,
    jit_compile="auto",
    recipe=PAPER_RECIPE,
):
    """Compiles a lone `NASNetA` with a recipe and starts its drop-path schedule.

    The recipe's learning rate, warm-up, label smoothing and auxiliary weight
    apply here; its drop-path keep probability and weight decay are the
    model's own (`NASNetA(drop_path_keep_prob=..., weight_decay=...)`), and
    its augmentation is the data's.

    Args:
        model: a `NASNetA`, with or without its auxiliary head.
        total_steps: int, training steps of the run (cosine decay and drop path).
        batch_size: int, the global batch size.
        base_learning_rate: float, the learning rate at batch 32, or None for
            the recipe's.
        jit_compile: bool or `"auto"`, as `keras.Model.compile` (on TensorFlow,
            `"auto"` uses XLA only when an accelerator is visible).
        recipe: a `Recipe` (default: `PAPER_RECIPE`).

    Returns:
        The model, compiled.

    Example:

    >>> model = compile_subnetwork(NASNetA("1@24"), total_steps=100, batch_size=32)
    >>> model.fit(data.training_dataset(32), epochs=1)
    """
    if not isinstance(model, NASNetA):
        raise TypeError(
            f"`model` must be a NASNetA. Received: model of type {type(model).__name__}"
        )
    if base_learning_rate is None:
        base_learning_rate = recipe.learning_rate
    loss = SparseCategoricalCrossentropyWithSmoothing(recipe.label_smoothing)
    if model.include_auxiliary_head:
        losses = {LOGITS: loss, AUX_LOGITS: loss}
        loss_weights = {LOGITS: 1.0, AUX_LOGITS: recipe.auxiliary_weight}
        metrics = {LOGITS: ["accuracy"]}
    else:
        losses, loss_weights, metrics = loss, None, ["accuracy"]
    model.compile(
        optimizer=make_optimizer(total_steps, batch_size, base_learning_rate, recipe.warmup),
        loss=losses,
        loss_weights=loss_weights,
        metrics=metrics,
        jit_compile=jit_compile,
    )
    set_drop_path_schedule(model, total_steps)
    return model


def auxiliary_targets(images, labels):
    """Maps `(images, labels)` to the targets of a model with an auxiliary head.

    Use with `dataset.map(auxiliary_targets)` before fitting a model compiled
    by `compile_subnetwork` with its auxiliary head.
    """
    return images, {LOGITS: labels, AUX_LOGITS: labels}


RECIPES = ("auto", "paper")
"""`AdaNASClassifier`'s `recipe`: fitted to the run (`recipe_for`), or the paper's."""


SHORT_RUN_EPOCHS = 10
"""Members trained this many epochs or fewer take `SHORT_RUN_RECIPE`."""

PAPER_RUN_EPOCHS = 600
"""Members trained this many epochs or more take the paper's recipe's
learning rate and regularisers."""

SHORT_RUN_RECIPE = Recipe(
    learning_rate=0.2,
    cutout=0.0,
    drop_path_keep_prob=1.0,
    auxiliary_weight=0.0,
    label_smoothing=0.0,
    weight_decay=1e-3,
    recompute_batch_statistics=True,
    mixture_fit="refit",
)
"""The recipe of members of `SHORT_RUN_EPOCHS` epochs on colour images."""

_INTERPOLATED = (
    "learning_rate",
    "cutout",
    "drop_path_keep_prob",
    "auxiliary_weight",
    "label_smoothing",
    "weight_decay",
)


def _along_log_epochs(points, epochs):
    """The value at `epochs` of the line through `points` (`(epochs,
    value)` pairs, ascending) on a log scale of epochs, flat past the ends."""
    if epochs <= points[0][0]:
        return points[0][1]
    for (start, low), (end, high) in zip(points, points[1:], strict=False):
        if epochs < end:
            progress = math.log(epochs / start) / math.log(end / start)
            return low + progress * (high - low)
    return points[-1][1]


def _augments(image_shape):
    """Whether pad-crop-flip suits the images: colour ones (flips and crops
    of grayscale glyphs such as digits cost accuracy in short runs)."""
    return int(image_shape[-1]) == 3


def recipe_for(epochs_per_member, image_shape):
    """The recipe fitted to how long each member trains, and to the images.

    Members of up to `SHORT_RUN_EPOCHS` epochs take `SHORT_RUN_RECIPE`
    (learning rate 0.2 at batch 32, no regulariser but twice the paper's
    weight decay); from `PAPER_RUN_EPOCHS` on, the paper's learning rate,
    weight decay and regularisers (cutout, drop path, the auxiliary head,
    label smoothing); in between, each of those settings
    moves from one to the other with the logarithm of the epochs. Every
    length recomputes the batch-norm statistics after training and refits
    the mixture weights on served logits; grayscale images train without
    augmentation (flips and crops of glyphs such as digits mislead a short
    run). The rule and the measurements it comes from are in
    `benchmarks/README.md` ("The recipe fitted to the run"; the weight
    decay: "a 10-minute member's learning rate and weight decay").

    Args:
        epochs_per_member: float, passes over the training data per member;
            None when a `time_limit` plans them (then as `SHORT_RUN_EPOCHS`).
        image_shape: `(height, width, channels)`.

    Returns:
        A `Recipe`.

    Example:

    >>> recipe_for(10, (32, 32, 3)) == SHORT_RUN_RECIPE
    True
    >>> recipe_for(600, (32, 32, 3)).cutout
    0.5
    """
    epochs = SHORT_RUN_EPOCHS if epochs_per_member is None else float(epochs_per_member)
    changes = {
        name: _along_log_epochs(
            (
                (SHORT_RUN_EPOCHS, getattr(SHORT_RUN_RECIPE, name)),
                (PAPER_RUN_EPOCHS, getattr(PAPER_RECIPE, name)),
            ),
            epochs,
        )
        for name in _INTERPOLATED
    }
    return dataclasses.replace(SHORT_RUN_RECIPE, augment=_augments(image_shape), **changes)


def resolve_recipe(name, epochs_per_member, image_shape, **overrides):
    """The `Recipe` a search trains with.

    Args:
        name: `"auto"` (`recipe_for`) or `"paper"` (`PAPER_RECIPE`).
        epochs_per_member: float, passes over the training data per member.
        image_shape: `(height, width, channels)`.
        **overrides: `Recipe` fields that replace the named recipe's (None
            leaves one as it is); `cutout_size` (pixels) replaces `cutout`.

    Returns:
        A `Recipe`.

    Example:

    >>> resolve_recipe("paper", 600, (32, 32, 3), learning_rate=0.1).learning_rate
    0.1
    """
    recipe = PAPER_RECIPE if name == "paper" else recipe_for(epochs_per_member, image_shape)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "cutout_size" in changes:
        side = min(int(image_shape[0]), int(image_shape[1]))
        size = int(changes.pop("cutout_size"))
        if size > side:
            raise ValueError(
                f"`cutout_size` must be at most the images' shorter side, {side}. "
                f"Received: cutout_size={size}"
            )
        changes["cutout"] = size / side
    return dataclasses.replace(recipe, **changes)
