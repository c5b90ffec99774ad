"""The NASNet-A CIFAR training recipe (DESIGN.md section 3), as Keras objects.

SGD with momentum 0.9, learning rate 0.025 at batch 32 scaled linearly with
the global batch, cosine decay to 0 over the steps, gradients clipped to global
norm 5; cross-entropy with label smoothing 0.1 on the logits and 0.4 times the
same on the auxiliary logits.
"""

import keras

from keras_adanas.nasnet import AUX_LOGITS, LOGITS, NASNetA, set_drop_path_schedule

BASE_LEARNING_RATE = 0.025
BASE_BATCH_SIZE = 32
MOMENTUM = 0.9
CLIP_NORM = 5.0
LABEL_SMOOTHING = 0.1
AUXILIARY_LOSS_WEIGHT = 0.4


def scaled_learning_rate(batch_size, base_learning_rate=BASE_LEARNING_RATE):
    """`base_learning_rate * batch_size / 32`: the linear scaling rule."""
    return float(base_learning_rate) * int(batch_size) / BASE_BATCH_SIZE


def learning_rate_schedule(total_steps, batch_size, base_learning_rate=BASE_LEARNING_RATE):
    """The scaled learning rate, cosine-decayed to 0 over `total_steps`."""
    if int(total_steps) < 1:
        raise ValueError(f"`total_steps` must be >= 1. Received: total_steps={total_steps}")
    return keras.optimizers.schedules.CosineDecay(
        scaled_learning_rate(batch_size, base_learning_rate),
        decay_steps=int(total_steps),
        alpha=0.0,
    )


def make_optimizer(total_steps, batch_size, base_learning_rate=BASE_LEARNING_RATE):
    """SGD, momentum 0.9, cosine decay to 0 over `total_steps`, clip norm 5.

    Args:
        total_steps: int, optimizer steps of the whole run.
        batch_size: int, the global batch size.
        base_learning_rate: float, the learning rate at batch 32.

    Returns:
        A `keras.optimizers.SGD`.
    """
    schedule = learning_rate_schedule(total_steps, batch_size, base_learning_rate)
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
    model, total_steps, batch_size, base_learning_rate=BASE_LEARNING_RATE, jit_compile="auto"
):
    """Compiles a lone `NASNetA` with the recipe and starts its drop-path schedule.

    Args:
        model: a `NASNetA`, with or without its auxiliary head.
        total_steps: int, training steps of the run (cosine decay and drop path).
        batch_size: int, the global batch size.
        base_learning_rate: float, the learning rate at batch 32.
        jit_compile: bool or `"auto"`, as `keras.Model.compile` (on TensorFlow,
            `"auto"` uses XLA only when an accelerator is visible).

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
    loss = SparseCategoricalCrossentropyWithSmoothing()
    if model.include_auxiliary_head:
        losses = {LOGITS: loss, AUX_LOGITS: loss}
        loss_weights = {LOGITS: 1.0, AUX_LOGITS: AUXILIARY_LOSS_WEIGHT}
        metrics = {LOGITS: ["accuracy"]}
    else:
        losses, loss_weights, metrics = loss, None, ["accuracy"]
    model.compile(
        optimizer=make_optimizer(total_steps, batch_size, base_learning_rate),
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
