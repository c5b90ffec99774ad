"""Where TensorFlow's fused batch normalization wins, per dtype.

    python benchmarks/batch_norm.py --repeats 3

For float32, mixed_bfloat16 and mixed_float16 it times TF's fused kernel
(forced on for every rank-4 input, whatever the dtype) against Keras' own
batch normalization (the same layer with the fused path turned off):
- the layer alone: forward and backward on a 32x32x32x64 batch, ms per step;
- a bare 2@192 NASNetA training step (batch 32, no auxiliary head), images/s.
The two variants run in turns, `--repeats` rounds of `--steps` steps each,
and each figure is the median round, so a slow spell slows both alike.
`FusedBatchNormalization` fuses only where the whole step was faster here.
"""

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from keras_adanas.nasnet import FusedBatchNormalization, NASNetA

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def set_fusion(layer, fused):
    """Forces the fused kernel on (rank-4 inputs, any dtype) or off."""
    if fused:
        layer._fuses = lambda inputs, mask: mask is None and len(inputs.shape) == 4
    else:
        layer._fuses = lambda inputs, mask: False
    return layer


def layer_step(policy, fused):
    layer = set_fusion(FusedBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy), fused)
    x = tf.cast(tf.random.stateless_normal((32, 32, 32, 64), seed=(0, 0)), layer.compute_dtype)
    layer.build(x.shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x, training=True), "float32"))
        return tape.gradient(loss, [x, layer.gamma.value])

    return step


def model_step(policy, fused):
    model = NASNetA("2@192", 10, include_auxiliary_head=False, seed=0, dtype=policy)
    for layer in model.layers:
        if isinstance(layer, FusedBatchNormalization):
            set_fusion(layer, fused)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 32)
    return lambda: model.train_on_batch(images, labels)


def in_turns(steps_by_name, steps, repeats):
    """Median seconds per step of each callable, timed round by round."""
    for step in steps_by_name.values():
        step()  # trace and warm up
    rounds = {name: [] for name in steps_by_name}
    for _ in range(repeats):
        for name, step in steps_by_name.items():
            start = time.perf_counter()
            for _ in range(steps):
                result = step()
            if isinstance(result, (list, tuple)) and hasattr(result[0], "numpy"):
                result[0].numpy()  # wait for the last step
            rounds[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(times) for name, times in rounds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    # speedup: Keras' time per step over the fused kernel's.
    print(f"{'policy':<15} {'what':<22} {'fused':>10} {'keras':>10} {'speedup':>8}")
    for policy in args.policies.split(","):
        layer = in_turns(
            {"fused": layer_step(policy, True), "keras": layer_step(policy, False)},
            args.steps * 5,
            args.repeats,
        )
        print(
            f"{policy:<15} {'layer alone, ms/step':<22} {layer['fused'] * 1e3:>10.2f} "
            f"{layer['keras'] * 1e3:>10.2f} {layer['keras'] / layer['fused']:>8.3f}",
            flush=True,
        )
        whole = in_turns(
            {"fused": model_step(policy, True), "keras": model_step(policy, False)},
            args.steps,
            args.repeats,
        )
        fused, plain = 32 / whole["fused"], 32 / whole["keras"]
        print(
            f"{policy:<15} {'2@192 step, images/s':<22} {fused:>10.1f} {plain:>10.1f} "
            f"{fused / plain:>8.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
