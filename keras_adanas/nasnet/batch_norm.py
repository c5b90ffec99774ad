"""Batch normalization computed by TensorFlow's fused kernel, and
synchronized over the replicas of a strategy for a training."""

import contextlib

import keras


@keras.saving.register_keras_serializable(package="keras_adanas")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, one fused kernel per call on TensorFlow.

    Keras 3 normalizes with a handful of broadcast element-wise ops (moments,
    subtract, scale, shift) and as many again in the gradient. On TensorFlow
    this layer calls `FusedBatchNormV3` instead, one op forward and one
    backward; NASNet-A has a batch normalization after every convolution, so
    this is most of a training step's element-wise work (measured in
    `benchmarks/throughput.py`: a 2@192 candidate trains 18% faster on a
    CPU). The result is the same layer: the same variables, the same moving
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
            # Not bfloat16: the fused kernel is faster alone but made a whole
            # 2@192 training step 16% slower on a 2-core CPU
            # (`benchmarks/batch_norm.py`: 136.7 against 163.7 images/s).
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


@contextlib.contextmanager
def synchronized_batch_norm(models, enabled=True):
    """Makes every batch normalization of `models` synchronized while the
    block runs (`keras.layers.BatchNormalization(synchronized=True)`).

    In training under a multi-replica TensorFlow strategy, each replica then
    normalizes with the mean and variance of the whole global batch instead
    of its own share of it. The layers are set back afterwards, so a saved
    model stays one any backend loads. It changes nothing outside a strategy.

    Args:
        models: Keras models or layers.
        enabled: bool; False makes this a context that does nothing.

    Example:

    >>> with synchronized_batch_norm([candidate], enabled=replicas > 1):
    ...     distiller.fit(dataset)
    """
    from keras_adanas.nasnet.ops import layers_of_type

    layers = [
        layer
        for model in models
        for layer in layers_of_type(model, keras.layers.BatchNormalization)
        if enabled and not layer.synchronized
    ]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False
