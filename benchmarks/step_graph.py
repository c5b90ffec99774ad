"""The size of a traced training step, and what it costs to trace, compile
and run: a `Distiller` with Keras' stock SGD update and L2 regularizer
against the same one with ours, as ratios measured in the same run.

    python benchmarks/step_graph.py --data ../shared/data/cifar10-dev.npz
    python benchmarks/step_graph.py --data ... --architecture 2@96 --candidates 1

Ours, on TensorFlow: `GroupedClippingSGD` updates each variable with one fused
kernel (Keras' SGD update takes five to seven ops) whose learning rate carries
the clip scale (one scalar op where scaling the gradient is one full-size op
per variable), and `WeightDecay` is one
`L2Loss` op with one gradient op (`keras.regularizers.L2` of the same penalty
takes three, and four in the gradient). A NASNet-A has hundreds of variables
and over a hundred regularized kernels, and a small search spends most of its
time tracing and compiling the step, which grows with its op count.

A third column runs ours with TensorFlow's graph optimizer (Grappler) off,
which a user sets process-wide with
`tf.config.optimizer.set_experimental_options({"disable_meta_optimizer":
True})`: the first step skips the graph rewrites, the later ones run
without them.

Each round builds a fresh `Distiller` of `--candidates` candidates of
`--architecture` (a fresh model traces and compiles from scratch) and trains
it `--steps` steps each way in turn. The figures: the first step (tracing,
graph optimization and the step itself) and the median later step, each the
median over `--repeats` rounds, and (TensorFlow) the ops in the traced
training step. That both ways compute the same update and penalty is tested
(tests/test_search.py::test_fused_update_equals_keras_sgd,
tests/test_nasnet.py::test_layer_settings). On JAX and PyTorch both ways run
the same ops, so the ratios are 1 up to noise.
"""

import argparse
import contextlib
import statistics
import time

import keras

from keras_adanas import Architecture, load_images
from keras_adanas.nasnet import WeightDecay
from keras_adanas.search import Distiller, GroupedClippingSGD, build_candidates


class KerasUpdateSGD(GroupedClippingSGD):
    """`GroupedClippingSGD` with `keras.optimizers.SGD`'s update step, the
    clip scales multiplying the gradients before it."""

    def _fuses_update(self, gradient, variable):
        return False


class StepTimes(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def on_train_begin(self, logs=None):
        self.seconds = []


def traced_ops(model, images, labels):
    """Ops in a training step traced for `images` (TensorFlow), else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    spec = (tf.TensorSpec(images.shape, images.dtype), tf.TensorSpec(labels.shape, labels.dtype))
    graph = tf.function(model.train_step).get_concrete_function(spec).graph
    return len(graph.get_operations())


def use_keras_l2(model):
    """Gives every variable `WeightDecay` regularizes Keras' L2 of the same
    penalty instead (Keras reads `variable.regularizer` at every call)."""
    for variable in model.weights:
        regularizer = getattr(variable, "regularizer", None)
        if isinstance(regularizer, WeightDecay):
            variable.regularizer = keras.regularizers.L2(regularizer.decay / 2)


@contextlib.contextmanager
def graph_optimizer(enabled):
    """TensorFlow's Grappler on or off for the functions traced inside.
    (TF reads the setting when it instantiates a function, at its first
    call.) Elsewhere, nothing."""
    if enabled or keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)}
        )


def train(stock, architecture, candidates, images, labels, steps, batch_size, *, seed, count):
    models = build_candidates([architecture] * candidates, 10, images.shape[1:], 1, seed=seed)
    model = Distiller(models)
    if stock:
        use_keras_l2(model)
    optimizer = (KerasUpdateSGD if stock else GroupedClippingSGD)(
        model.variable_groups(), learning_rate=0.01, momentum=0.9
    )
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)  # as the search does: outside the step
    timer = StepTimes()
    model.fit(
        images[: steps * batch_size],
        labels[: steps * batch_size],
        batch_size=batch_size,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    op_count = None
    if count:
        op_count = traced_ops(model, images[:batch_size], labels[:batch_size])
    return timer.seconds, op_count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an .npz file such as cifar10-dev.npz")
    parser.add_argument("--architecture", default="1@24")
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps must be at least 2. Received: {args.steps}")

    data = load_images(args.data)
    images = data.images.astype("float32")
    architecture = Architecture.parse(args.architecture)
    # name: (Keras' stock update and L2, Grappler on)
    ways = {"keras": (True, True), "ours": (False, True)}
    if keras.backend.backend() == "tensorflow":
        ways["ours_no_grappler"] = (False, False)
    first, later, op_counts = ({name: [] for name in ways} for _ in range(3))
    for round_index in range(args.repeats):
        for name, (stock, grappler) in ways.items():
            with graph_optimizer(grappler):
                seconds, op_count = train(
                    stock,
                    architecture,
                    args.candidates,
                    images,
                    data.labels,
                    args.steps,
                    args.batch_size,
                    seed=round_index,
                    count=round_index == 0 and grappler,
                )
            first[name].append(seconds[0])
            later[name].append(statistics.median(seconds[1:]))
            if op_count is not None:
                op_counts[name].append(op_count)

    print(
        f"backend {keras.backend.backend()}, {args.candidates} x {architecture}, "
        f"batch {args.batch_size}, {args.steps} steps, median of {args.repeats} rounds:"
    )
    no_grappler = "ours_no_grappler" in ways
    header = f"  {'':22}{'Keras stock':>14}{'ours':>14}{'keras/ours':>13}"
    if no_grappler:
        header += f"{'no Grappler':>14}{'ours/no Gr.':>13}"
    print(header)
    rows = [("first step (s)", first, "{:.2f}"), ("later step (ms)", later, "{:.1f}")]
    for label, figures, form in rows:
        scale = 1000.0 if "ms" in label else 1.0
        theirs = statistics.median(figures["keras"]) * scale
        ours = statistics.median(figures["ours"]) * scale
        line = f"  {label:22}{form.format(theirs):>14}{form.format(ours):>14}{theirs / ours:>13.2f}"
        if no_grappler:
            bare = statistics.median(figures["ours_no_grappler"]) * scale
            line += f"{form.format(bare):>14}{ours / bare:>13.2f}"
        print(line)
    if op_counts["keras"]:
        (theirs,), (ours,) = op_counts["keras"], op_counts["ours"]
        print(f"  {'ops in the step':22}{theirs:>14}{ours:>14}{theirs / ours:>13.2f}")


if __name__ == "__main__":
    main()
