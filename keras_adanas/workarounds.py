"""Every place keras_adanas stands in for a Keras built-in, in one module.

Each entry names the built-in it replaces, why, and when to remove it; each
has a test showing it computes what the built-in computes. A speed
workaround stays only while its benchmark measures a training step at least
10% faster with it on its backend (the figures are in `benchmarks/README.md`).

- `FusedBatchNormalization` for `keras.layers.BatchNormalization` (speed, TF;
  `benchmarks/batch_norm.py`, tested in `tests/test_batch_norm.py`): remove
  once Keras' TensorFlow backend calls the fused kernel itself, or once the
  benchmark shows under 10%.
- `PaddingExcludedAveragePooling2D` for `keras.layers.AveragePooling2D`
  (correctness on PyTorch; `tests/test_nasnet.py`): remove at Keras >= 3.16,
  which averages an uneven "same" border without the padding
  (keras-team/keras#23233).
- `DistillerTrainerHooks`, overrides of three `keras.Model` trainer hooks the
  `Distiller` needs (each method says when to remove it).
"""

import keras
from keras import ops

from keras_adanas.distribute import spans_workers


@keras.saving.register_keras_serializable(package="keras_adanas")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, one fused kernel per call on TensorFlow.

    Keras 3 normalizes with a handful of broadcast element-wise ops (moments,
    subtract, scale, shift) and as many again in the gradient. On TensorFlow
    this layer calls `FusedBatchNormV3` instead, one op forward and one
    backward; NASNet-A has a batch normalization after every convolution, so
    this is most of a training step's element-wise work
    (`benchmarks/batch_norm.py`). The result is the same layer: the same variables, the same moving
    statistics update (with the biased batch variance, as Keras), the same
    outputs to float32 rounding, and the same configuration.

    The fused kernel is used for rank-4, channels-last inputs without mask in
    the layer's compute dtype, float32 or float16 (under "mixed_float16": the
    kernel keeps the statistics in float32, as Keras does), on the TensorFlow
    backend; anything else (bfloat16 included), and every other backend, runs
    `keras.layers.BatchNormalization.call` unchanged.

    Args:
        **kwargs: `keras.layers.BatchNormalization` arguments.

    Example:

    >>> layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> y = layer(keras.ops.ones((2, 4, 4, 3)), training=True)
    """

    def _fuses(self, inputs, mask):
        return (
            keras.config.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) == self.compute_dtype
            # Not bfloat16: the fused kernel is faster alone but makes a
            # whole training step slower (`benchmarks/batch_norm.py`).
            and self.compute_dtype in ("float32", "float16")
            and self.variable_dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fuses(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # the fused kernel is TensorFlow's

        if not (training and self.trainable):
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                self.gamma.value,
                self.beta.value,
                mean=self.moving_mean.value,
                variance=self.moving_variance.value,
                epsilon=self.epsilon,
                is_training=False,
            )
            return outputs
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma.value, self.beta.value, epsilon=self.epsilon, is_training=True
        )
        # The kernel returns the batch variance with Bessel's correction;
        # Keras' moving variance follows the biased one: times
        # `1 - 1 / count`, `count = size / channels` values per channel.
        # (From the tensor's size: one op where slicing the shape took a
        # dozen, in each of a network's batch norms.)
        size = tf.cast(tf.size(inputs, out_type=tf.int64), variance.dtype)
        channels = float(inputs.shape[-1])
        variance = variance * (1.0 - channels / tf.maximum(size, channels))
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs


@keras.saving.register_keras_serializable(package="keras_adanas")
class PaddingExcludedAveragePooling2D(keras.layers.AveragePooling2D):
    """`AveragePooling2D` whose `"same"` windows average real pixels only, on
    every backend (remove at Keras >= 3.16, which does so itself).

    TensorFlow and JAX leave the padding out of each window's mean. Keras'
    PyTorch backend does too where the padding is even, but pads an uneven
    one (a 3x3 window with stride 2 on an even size: none before, one after)
    by repeating the edge, and counts the repeats: the last row and column of
    a reduction cell's `avg3` differ, and a PyTorch-trained network would
    serve other probabilities once exported to TensorFlow. On PyTorch this
    layer pads with zeros as TensorFlow does and divides each window's sum by
    the number of real pixels in it; elsewhere it is `AveragePooling2D`.

    Example:

    >>> pool = PaddingExcludedAveragePooling2D(3, strides=2, padding="same")
    >>> tuple(pool(keras.ops.ones((1, 4, 4, 1))).shape)
    (1, 2, 2, 1)
    """

    def call(self, inputs):
        if (
            keras.backend.backend() != "torch"
            or self.padding != "same"
            or self.data_format != "channels_last"
            or None in inputs.shape[1:3]
        ):
            return super().call(inputs)
        pads = [(0, 0)]
        sizes = inputs.shape[1:3]
        for size, window, stride in zip(sizes, self.pool_size, self.strides, strict=True):
            total = max((-(-size // stride) - 1) * stride + window - size, 0)
            pads.append((total // 2, total - total // 2))
        pads.append((0, 0))
        window_sums = ops.average_pool(
            ops.pad(inputs, pads), self.pool_size, self.strides, padding="valid"
        )
        ones = ops.ones((1, *sizes, 1), dtype=inputs.dtype)
        real_fraction = ops.average_pool(
            ops.pad(ones, pads), self.pool_size, self.strides, padding="valid"
        )
        return window_sums / real_fraction


class DistillerTrainerHooks:
    """Overrides of Keras trainer hooks for a model training several
    candidates at once (`keras_adanas.search.Distiller` mixes it in first).

    Tested by `tests/test_distribute.py` (two workers agree; one mirrored
    step equals one single-device step) and
    `test_two_identical_candidates_train_identically` (PyTorch).
    """

    def train_step(self, *args, **kwargs):
        """Keras' step; under a multi-worker TF strategy, each log a vector.

        Keras' TF trainer averages a multi-worker step's logs with
        `strategy.reduce("MEAN", value, axis=0)`, which needs an axis: hand
        it each loss as a vector of one. Remove once Keras reduces scalar
        logs across workers.
        """
        # `(data)` on TensorFlow, `(state, data)` on JAX.
        logs = super().train_step(*args, **kwargs)
        if spans_workers():  # TensorFlow only
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def zero_grad(self, set_to_none=True):
        """PyTorch: clears every trainable variable's gradient.

        Keras' torch trainer calls `torch.nn.Module.zero_grad` before each
        backward pass, which clears the parameters Keras registered, keyed by
        variable path. The candidates' paths repeat (each has a
        `stem_conv/kernel`), so all but one candidate's gradients would add
        up from step to step. Remove once Keras registers parameters by
        object rather than by path.
        """
        for variable in self.trainable_variables:
            variable.value.grad = None

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """TF strategies: builds the optimizer, and nothing else.

        Keras' TF trainer calls this before fit/evaluate/predict under a
        strategy. Its own version reduces a first input batch across the
        replicas, in one `strategy.reduce` call on an (images, labels) pair
        that MultiWorkerMirroredStrategy refuses (Keras 3.15). A Distiller
        has every layer built and compiles no loss or metric, so building the
        optimizer is all there is to do, and it needs no data. Remove once
        Keras' version works under MultiWorkerMirroredStrategy.
        """
        if getattr(self, "_distribute_strategy", None) is None:
            return
        if self.optimizer is not None and not self.optimizer.built:
            with self._distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
