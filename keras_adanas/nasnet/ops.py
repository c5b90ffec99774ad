"""NASNet-A building blocks: layer settings, separable stacks, factorized
reduction and scheduled drop path."""

import keras
from keras import ops

from keras_adanas.distribute import uniform_per_replica
from keras_adanas.workarounds import FusedBatchNormalization

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
WEIGHT_DECAY = 5e-4
"""The reference's decay `d` in `d * sum(w**2) / 2`, i.e. `L2(d / 2)` in Keras."""
DROP_PATH_KEEP_PROB = 0.6


def kernel_initializer(seed=None):
    """VarianceScaling(2.0, fan_out, truncated normal), as the reference."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="truncated_normal", seed=seed
    )


def kernel_regularizer(weight_decay=WEIGHT_DECAY):
    """The reference's `weight_decay * sum(w**2) / 2`: Keras' `L2(weight_decay / 2)`."""
    if not weight_decay:
        return None
    return keras.regularizers.L2(weight_decay / 2.0)


@keras.saving.register_keras_serializable(package="keras_adanas")
class DropPath(keras.layers.Layer):
    """Scheduled drop path: drops a whole op output per example.

    In training, each example's input is kept with probability

        keep = 1 - min(1, step / total_steps) * (c + 1) / (C + 2) * (1 - p)

    and scaled by `1 / keep`, where `c` is the index of the cell holding the op
    (reduction cells counted, `0..C+1`), `C` the number of normal cells, `p`
    the final keep probability of the last cell (0.6 in NASNet-A), and `step`
    the number of training calls made so far. At inference it is the identity,
    and so it is in training with `keep_prob=1` (its `step` then stays put).

    `step` and `total_steps` are non-trainable variables, so the schedule runs
    inside the compiled step on every backend and survives saving. The training
    loop sets the schedule with `set_drop_path_schedule()`; while `total_steps`
    is 0 the keep probability stays 1.

    Args:
        cell_index: int, `c` above.
        num_cells: int, `C` above (normal cells of the whole network).
        keep_prob: float in (0, 1], `p` above.
        total_steps: int, initial length of the schedule in training steps.
        seed: int or None, seed of the drop pattern.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    >>> layer = DropPath(cell_index=0, num_cells=3, total_steps=100)
    >>> y = layer(keras.ops.ones((8, 4, 4, 2)), training=True)
    """

    def __init__(
        self,
        cell_index,
        num_cells,
        keep_prob=DROP_PATH_KEEP_PROB,
        total_steps=0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= int(cell_index) <= int(num_cells) + 1:
            raise ValueError(
                f"`cell_index` must be in [0, num_cells + 1]. Received: "
                f"cell_index={cell_index}, num_cells={num_cells}"
            )
        if not 0.0 < float(keep_prob) <= 1.0:
            raise ValueError(f"`keep_prob` must be in (0, 1]. Received: keep_prob={keep_prob}")
        self.cell_index = int(cell_index)
        self.num_cells = int(num_cells)
        self.keep_prob = float(keep_prob)
        self.initial_total_steps = int(total_steps)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        # `autocast=False`: under a mixed policy, a counter read as float16
        # stops at 2048 (2048 + 1 rounds back to 2048), and PyTorch's assign
        # writes into the float16 copy, so the step would not move at all.
        self.step = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            autocast=False,
            name="step",
            aggregation="only_first_replica",
        )
        self.total_steps = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_total_steps),
            trainable=False,
            autocast=False,
            name="total_steps",
            aggregation="only_first_replica",
        )

    @property
    def final_drop_rate(self):
        """`(c + 1) / (C + 2) * (1 - p)`: the drop rate once the schedule ends."""
        return (self.cell_index + 1) / (self.num_cells + 2) * (1.0 - self.keep_prob)

    def keep_probability(self):
        """Returns the keep probability the next training call will use."""
        step = ops.cast(self.step, "float32")
        total = ops.cast(self.total_steps, "float32")
        # min(1, step / total), and 0 while total is 0: `min(step, total)`
        # is 0 then. (Fewer ops than a `where`: this runs in 42 layers of a
        # 1@24 network at every step and in every traced graph.)
        progress = ops.minimum(step, total) / ops.maximum(total, 1.0)
        return 1.0 - progress * self.final_drop_rate

    def call(self, inputs, training=None):
        if not training or self.keep_prob == 1.0:
            # With `keep_prob` 1 every mask is 1 (`floor(1 + u)` for u in
            # [0, 1)): the layer is the identity, and skipping its ops, its
            # draws and its counter leaves the outputs as they were.
            return inputs
        keep = self.keep_probability()
        self.step.assign(self.step + 1.0)
        batch_size = ops.shape(inputs)[0]
        # Each replica of a tf.distribute strategy draws its own masks.
        noise = uniform_per_replica((batch_size, 1, 1, 1), self.seed_generator)
        mask = ops.floor(keep + noise) / keep
        return inputs * ops.cast(mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def save_own_variables(self, store):
        super().save_own_variables(store)
        # The drop pattern's random state too, so a training restored from a
        # backup draws the masks the uninterrupted one would have drawn.
        store[self._seed_state_key] = self.seed_generator.state

    def load_own_variables(self, store):
        for i, variable in enumerate(self._trainable_variables + self._non_trainable_variables):
            variable.assign(store[f"{i}"])
        if self._seed_state_key in store.keys():  # Absent from older files.
            self.seed_generator.state.assign(store[self._seed_state_key])

    @property
    def _seed_state_key(self):
        return f"{len(self._trainable_variables + self._non_trainable_variables)}"

    def get_config(self):
        config = super().get_config()
        config.update(
            cell_index=self.cell_index,
            num_cells=self.num_cells,
            keep_prob=self.keep_prob,
            total_steps=self.initial_total_steps,
            seed=self.seed,
        )
        return config


def layers_of_type(model, layer_class):
    """Returns every `layer_class` layer of `model`, nested models included."""
    if isinstance(model, layer_class):
        return [model]
    found = []
    for layer in getattr(model, "layers", []):
        found.extend(layers_of_type(layer, layer_class))
    return found


def drop_path_layers(model):
    """Returns every `DropPath` layer of `model`, nested models included."""
    return layers_of_type(model, DropPath)


def set_drop_path_schedule(model, total_steps, step=0):
    """Restarts the drop-path schedule of every `DropPath` layer in `model`.

    Args:
        model: a Keras model or layer holding `DropPath` layers.
        total_steps: int, steps over which the drop rate ramps up to its final
            value; 0 turns drop path off.
        step: int, the training step to resume the schedule at.
    """
    if int(total_steps) < 0 or int(step) < 0:
        raise ValueError(
            "`total_steps` and `step` must be >= 0. Received: "
            f"total_steps={total_steps}, step={step}"
        )
    for layer in drop_path_layers(model):
        if not layer.built:
            layer.initial_total_steps = int(total_steps)
            continue
        layer.total_steps.assign(float(total_steps))
        layer.step.assign(float(step))


class LayerFactory:
    """Builds the named, identically configured layers of one subnetwork.

    Every conv, separable conv and dense layer gets the NASNet-A initializer and
    L2 regularizer, every batch normalization the reference momentum and
    epsilon, and every drop path the network's schedule; each layer is named
    `prefix + name`. Every layer gets the network's dtype policy, except the
    logits layers (`logits`), which compute in float32 as Keras' mixed
    precision guide advises, so that losses and ensembles see float32 logits.
    """

    def __init__(self, num_cells, weight_decay, drop_path_keep_prob, total_steps, seed, dtype=None):
        self.num_cells = num_cells
        self.dtype = dtype
        self.regularizer = kernel_regularizer(weight_decay)
        self.drop_path_keep_prob = drop_path_keep_prob
        self.total_steps = total_steps
        self._seed = seed
        self._count = 0

    def _next_seed(self):
        if self._seed is None:
            return None
        self._count += 1
        return self._seed + self._count

    def layer(self, layer_class, *args, **kwargs):
        """`layer_class(*args, **kwargs)` under the network's dtype policy,
        for the layers without weights (activations, pools, merges)."""
        return layer_class(*args, dtype=self.dtype, **kwargs)

    def conv(self, filters, kernel_size, name, strides=1, padding="same"):
        return keras.layers.Conv2D(
            int(filters),
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=kernel_initializer(self._next_seed()),
            kernel_regularizer=self.regularizer,
            dtype=self.dtype,
            name=name,
        )

    def separable_conv(self, filters, kernel_size, strides, name):
        return keras.layers.SeparableConv2D(
            int(filters),
            kernel_size,
            strides=strides,
            padding="same",
            depth_multiplier=1,
            use_bias=False,
            depthwise_initializer=kernel_initializer(self._next_seed()),
            pointwise_initializer=kernel_initializer(self._next_seed()),
            depthwise_regularizer=self.regularizer,
            pointwise_regularizer=self.regularizer,
            dtype=self.dtype,
            name=name,
        )

    def batch_norm(self, name):
        return FusedBatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=self.dtype, name=name
        )

    def whole_map_conv(self, filters, kernel_size, name):
        """A valid, bias-free convolution whose kernel covers its whole
        (flattened) input map, as the `Dense` layer it amounts to.

        The same function, parameter count and initial distribution as the
        `Conv2D`: its kernel flattened in (height, width, channels) order is
        the dense kernel, and the dense initializer's scale is divided by the
        kernel area because a dense layer's fan-out does not count it: one
        matrix multiply where the convolution ran as a slow small-kernel
        convolution on a CPU.
        """
        area = int(kernel_size[0]) * int(kernel_size[1])
        return keras.layers.Dense(
            int(filters),
            use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=2.0 / area,
                mode="fan_out",
                distribution="truncated_normal",
                seed=self._next_seed(),
            ),
            kernel_regularizer=self.regularizer,
            dtype=self.dtype,
            name=name,
        )

    def drop_path(self, cell_index, name):
        return DropPath(
            cell_index=cell_index,
            num_cells=self.num_cells,
            keep_prob=self.drop_path_keep_prob,
            total_steps=self.total_steps,
            seed=self._next_seed(),
            dtype=self.dtype,
            name=name,
        )

    def logits(self, units, name):
        """The dense logits layer: float32 under any policy."""
        return keras.layers.Dense(
            int(units),
            kernel_initializer=kernel_initializer(self._next_seed()),
            kernel_regularizer=self.regularizer,
            dtype="float32",
            name=name,
        )


def apply_relu_conv_bn(x, factory, filters, name, strides=1, relu=True):
    """ReLU (optional), 1x1 conv, batch norm."""
    if relu:
        x = factory.layer(keras.layers.ReLU, name=f"{name}_relu")(x)
    x = factory.conv(filters, 1, strides=strides, name=f"{name}_conv")(x)
    return factory.batch_norm(name=f"{name}_bn")(x)


def apply_separable_stack(x, factory, filters, kernel_size, strides, name):
    """`sepK`: twice [ReLU, separable KxK conv, BN]; the stride in the first."""
    for i in (1, 2):
        x = factory.layer(keras.layers.ReLU, name=f"{name}_relu_{i}")(x)
        x = factory.separable_conv(
            filters, kernel_size, strides if i == 1 else 1, name=f"{name}_sep_{i}"
        )(x)
        x = factory.batch_norm(name=f"{name}_bn_{i}")(x)
    return x


def apply_factorized_reduction(x, factory, filters, name):
    """Halves the spatial size with two offset 1x1 paths (no ReLU inside).

    Path 1 reads `x[::2, ::2]`, path 2 `x[1::2, 1::2]` (zero-padded on the
    bottom and right, so odd sizes give the same shape as a SAME stride-2 op);
    each has `filters // 2` (resp. the rest) 1x1 filters; their concatenation
    goes through batch norm.
    """
    # The subsampling stays a 1x1 average pool of stride 2, as the reference:
    # a stride-2 1x1 convolution would read the same pixels in one op, but
    # TensorFlow 2.21's oneDNN kernel for it corrupts the heap ("double free
    # or corruption") once the batch size changes, as at an epoch's last batch.
    half = int(filters) // 2
    path1 = factory.layer(keras.layers.AveragePooling2D, 1, strides=2, name=f"{name}_path1_pool")(x)
    path1 = factory.conv(half, 1, name=f"{name}_path1_conv")(path1)
    # x[i + 1, j + 1], zero past the edge: the odd pixels at the even places.
    path2 = factory.layer(keras.layers.Cropping2D, ((1, 0), (1, 0)), name=f"{name}_path2_crop")(x)
    path2 = factory.layer(keras.layers.ZeroPadding2D, ((0, 1), (0, 1)), name=f"{name}_path2_pad")(
        path2
    )
    path2 = factory.layer(keras.layers.AveragePooling2D, 1, strides=2, name=f"{name}_path2_pool")(
        path2
    )
    path2 = factory.conv(int(filters) - half, 1, name=f"{name}_path2_conv")(path2)
    x = factory.layer(keras.layers.Concatenate, name=f"{name}_concat")([path1, path2])
    return factory.batch_norm(name=f"{name}_bn")(x)
