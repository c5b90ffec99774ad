"""`NASNetA`: the NASNet-A CIFAR subnetwork as a functional Keras model."""

import math

import keras

from keras_adanas.architecture import AUXILIARY_HEAD_POOL, Architecture
from keras_adanas.nasnet.cells import apply_normal_cell, apply_reduction_cell
from keras_adanas.nasnet.ops import (
    DROP_PATH_KEEP_PROB,
    WEIGHT_DECAY,
    LayerFactory,
    apply_relu_conv_bn,
)

LOGITS = "logits"
AUX_LOGITS = "aux_logits"


def minimum_image_size(include_auxiliary_head=True):
    """Smallest height/width the subnetwork accepts.

    Two reductions need at least 4 pixels to reduce anything; the auxiliary
    head's 5x5 pool needs 5 pixels after the first reduction, so 9 before it.
    """
    if include_auxiliary_head:
        return 2 * (AUXILIARY_HEAD_POOL[0] - 1) + 1
    return 4


@keras.saving.register_keras_serializable(package="keras_adanas")
class NASNetA(keras.Model):
    """The NASNet-A CIFAR subnetwork N@F (DESIGN.md section 2).

    Takes raw images with pixel values in [0, 255] (uint8 or float) and scales
    them to [-1, 1] inside the model, so a saved model serves raw images. Its
    output is logits; with `include_auxiliary_head=True` it is a dict
    `{"logits": ..., "aux_logits": ...}` and `without_auxiliary_head()` gives
    the served model (same layers and weights, logits only, no auxiliary
    parameters).

    Args:
        architecture: an `Architecture` or an `"N@F"` string.
        num_classes: int, number of classes (>= 2).
        image_shape: `(height, width, channels)`; height and width at least 9
            with the auxiliary head (4 without), any channel count.
        include_auxiliary_head: bool, whether to add the training-only
            auxiliary head after the second stack.
        drop_path_keep_prob: float, keep probability of the last cell at the
            end of the drop-path schedule (0.6 in NASNet-A); 1.0 disables it.
        drop_path_total_steps: int, length of the drop-path schedule; 0 keeps
            drop path off until `set_drop_path_schedule()` sets it.
        weight_decay: float, the reference's L2 decay on kernels.
        seed: int or None, seed of the initializers and drop-path patterns.
        dtype: a dtype policy or its name (`"float32"`, `"mixed_float16"`,
            `"mixed_bfloat16"`), or None for Keras' global policy at
            construction. Every layer computes under it except the two logits
            layers, which compute in float32, so the outputs are float32.
        name: str, the model name.

    Example:

    >>> model = NASNetA("1@24", num_classes=10)
    >>> sorted(model(np.zeros((2, 32, 32, 3), "uint8")))
    ['aux_logits', 'logits']
    >>> served = model.without_auxiliary_head()
    >>> served.output_shape
    (None, 10)
    """

    def __init__(
        self,
        architecture="6@768",
        num_classes=10,
        image_shape=(32, 32, 3),
        include_auxiliary_head=True,
        drop_path_keep_prob=DROP_PATH_KEEP_PROB,
        drop_path_total_steps=0,
        weight_decay=WEIGHT_DECAY,
        seed=None,
        dtype=None,
        name=None,
        **kwargs,
    ):
        architecture = Architecture.parse(architecture)
        policy = resolve_dtype_policy(dtype)
        image_shape = validate_image_shape(image_shape, include_auxiliary_head)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(f"`num_classes` must be an int. Received: num_classes={num_classes!r}")
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
        if not 0.0 < float(drop_path_keep_prob) <= 1.0:
            raise ValueError(
                "`drop_path_keep_prob` must be in (0, 1]. Received: "
                f"drop_path_keep_prob={drop_path_keep_prob}"
            )
        if float(weight_decay) < 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")

        depth, f0 = architecture.depth, architecture.stem_filters
        num_cells = architecture.num_cells
        factory = LayerFactory(
            num_cells=num_cells,
            weight_decay=float(weight_decay),
            drop_path_keep_prob=float(drop_path_keep_prob),
            total_steps=int(drop_path_total_steps),
            seed=seed,
            dtype=policy.name,
        )

        # === Functional model ===
        inputs = keras.Input(shape=image_shape, name="images")
        rescaling = factory.layer(
            keras.layers.Rescaling, 1.0 / 127.5, offset=-1.0, name="rescaling"
        )
        x = rescaling(inputs)
        x = factory.conv(3 * f0, 3, name="stem_conv")(x)
        x = factory.batch_norm(name="stem_bn")(x)

        prev, cell_index, aux_logits = None, 0, None
        for stack in range(3):
            filters = f0 * 2**stack
            if stack > 0:
                reduced = apply_reduction_cell(
                    x,
                    prev,
                    factory,
                    filters,
                    cell_index,
                    name=f"reduction_cell_{stack - 1}",
                )
                prev, x = x, reduced
                cell_index += 1
            for i in range(depth):
                out = apply_normal_cell(
                    x,
                    prev,
                    factory,
                    filters,
                    cell_index,
                    name=f"cell_{stack * depth + i}",
                )
                prev, x = x, out
                cell_index += 1
            if stack == 1 and include_auxiliary_head:
                aux_logits = _apply_auxiliary_head(x, factory, num_classes)

        x = factory.layer(keras.layers.ReLU, name="head_relu")(x)
        x = factory.layer(keras.layers.GlobalAveragePooling2D, name="head_pool")(x)
        logits = factory.logits(num_classes, name=LOGITS)(x)
        outputs = logits
        if include_auxiliary_head:
            outputs = {LOGITS: logits, AUX_LOGITS: aux_logits}
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        # A functional model's constructor drops `dtype`; the policy is what its
        # layers compute in, and `compile` wraps the optimizer in a
        # `LossScaleOptimizer` under "mixed_float16".
        self.dtype_policy = policy

        # === Config ===
        self.architecture = architecture
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.include_auxiliary_head = bool(include_auxiliary_head)
        self.drop_path_keep_prob = float(drop_path_keep_prob)
        self.drop_path_total_steps = int(drop_path_total_steps)
        self.weight_decay = float(weight_decay)
        self.seed = seed

    def without_auxiliary_head(self, name=None):
        """Returns the served subnetwork: images to logits, weights shared.

        Its trainable parameters are `architecture.count_params(num_classes)`.
        A model without an auxiliary head is served as it is: itself, or
        under `name` a functional model of the same layers.
        """
        if not self.include_auxiliary_head:
            return self if name is None else keras.Model(self.input, self.output, name=name)
        logits = self.get_layer(LOGITS).output
        return keras.Model(self.input, logits, name=name or f"{self.name}_served")

    def get_config(self):
        return {
            "architecture": str(self.architecture),
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "include_auxiliary_head": self.include_auxiliary_head,
            "drop_path_keep_prob": self.drop_path_keep_prob,
            "drop_path_total_steps": self.drop_path_total_steps,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "dtype": self.dtype_policy.name,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _apply_auxiliary_head(x, factory, num_classes):
    """ReLU, avg-pool 5/3 valid, conv1x1 128-BN-ReLU, conv 768-BN-ReLU, dense."""
    pool, stride = AUXILIARY_HEAD_POOL
    x = factory.layer(keras.layers.ReLU, name="aux_relu")(x)
    x = factory.layer(
        keras.layers.AveragePooling2D, pool, strides=stride, padding="valid", name="aux_pool"
    )(x)
    x = apply_relu_conv_bn(x, factory, 128, name="aux_proj", relu=False)
    x = factory.layer(keras.layers.ReLU, name="aux_proj_relu")(x)
    kernel = (int(x.shape[1]), int(x.shape[2]))
    # The reference's valid conv whose kernel is the whole map, as a dense layer.
    x = factory.layer(keras.layers.Flatten, name="aux_flatten")(x)
    x = factory.whole_map_conv(768, kernel, name="aux_conv")(x)
    x = factory.batch_norm(name="aux_conv_bn")(x)
    x = factory.layer(keras.layers.ReLU, name="aux_conv_relu")(x)
    return factory.logits(num_classes, name=AUX_LOGITS)(x)


TRAINABLE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def resolve_dtype_policy(dtype=None, argument="dtype"):
    """Returns the `keras.DTypePolicy` a subnetwork computes under.

    Args:
        dtype: a policy or its name among `TRAINABLE_POLICIES`, or None for
            Keras' global policy (which must be one of them too).
        argument: the argument's name in the error message.

    Returns:
        A `keras.DTypePolicy` with float32 variables.

    Raises:
        ValueError: for any other policy (float16 or bfloat16 variables
            do not train, and quantized or integer policies do not apply).
    """
    try:
        policy = keras.config.dtype_policy() if dtype is None else keras.dtype_policies.get(dtype)
    except (TypeError, ValueError):
        policy = None
    if policy is None or policy.name not in TRAINABLE_POLICIES:
        received = (
            f"{argument}=None and Keras' global policy {policy.name!r}"
            if dtype is None
            else f"{argument}={dtype!r}"
        )
        raise ValueError(
            f"`{argument}` must be one of {list(TRAINABLE_POLICIES)}, a policy with one "
            f"of these names, or None for Keras' global policy. Received: {received}"
        )
    return policy


def validate_image_shape(image_shape, include_auxiliary_head=True):
    """Returns `image_shape` as ints, or raises a `ValueError` naming why the
    subnetwork cannot take it (rank, sizes, too small for two reductions)."""
    try:
        shape = tuple(int(d) for d in image_shape)
    except (TypeError, ValueError):
        shape = None
    if shape is None or len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            "`image_shape` must be (height, width, channels) with positive "
            f"ints. Received: image_shape={image_shape!r}"
        )
    smallest = minimum_image_size(include_auxiliary_head)
    if min(shape[:2]) < smallest:
        head = "with" if include_auxiliary_head else "without"
        raise ValueError(
            f"Images must be at least {smallest}x{smallest} for two reductions "
            f"{head} the auxiliary head (at least "
            f"{math.ceil(smallest / 2)} pixels after the first reduction). "
            f"Received: image_shape={image_shape!r}"
        )
    return shape
