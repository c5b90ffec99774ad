"""Where a search's time goes: training throughput of its configurations, as
ratios against one lone candidate measured in the same run.

    python benchmarks/throughput.py --data cifar10-dev.npz
    python benchmarks/throughput.py --architecture 1@96 --repeats 3  # quicker
    python benchmarks/throughput.py --jit-compile true --mixed-precision
    KERAS_BACKEND=jax python benchmarks/throughput.py ...  # on a GPU machine
    bash benchmarks/device_check.sh  # every GPU figure in one device call

TensorFlow is optional on JAX: without it the batches come from
`keras_adanas.data.batches` and F (which needs a SavedModel) is skipped.

Figures (images/s; every "step time" ratio is time per training step):
  A  one candidate alone (a Distiller of one 2@192 candidate, no members): the base
  B  two candidates of the same architecture in one step: B/A step time
     (target <= 1.9: one step of two costs less than two steps)
  C  iteration 4, adaptive distillation, scalar weights (three frozen members
     as teacher): C/A (target <= 1 + 0.4 x 3)
  D  iteration 4, no distillation, uniform weights: D/A (target <= 1.05:
     nothing from the earlier members is needed in training)
  E  our NASNet-A against the same network built from keras.applications'
     NASNet-A cells, both trained alone with the recipe: ours/theirs images/s
     (target >= 1)
  F  the exported ensemble (SavedModel `serve_float`) against its members run
     one by one and mixed in NumPy, inference images/s: exported/one-by-one
     (target >= 1)
  G  training on the live augmented pipeline against training on the same
     batches pre-augmented in memory: live/in-memory images/s (target >= 0.95)
A and B also report the CPU cores the process kept busy (process CPU time /
wall time): when A already keeps every core busy, B, twice the work, cannot
take much less than twice A's time. Also the model FLOPs per image
(multiply-adds x 2 of every convolution and dense layer, forward) and A's
achieved FLOP/s (3 x forward per training image) as a fraction of the
machine's measured float32 matmul peak.

Every configuration first trains a warm-up epoch (tracing and compilation);
then they take turns, `--repeats` rounds of one timed `fit` of `--steps` steps
each, and each figure quotes its median round. Taking turns keeps the ratios
honest when the machine's speed drifts during the run. `--jit-compile` is
Keras' `jit_compile` for every configuration: `auto` (the default) is XLA on
JAX and on a TensorFlow GPU, none on a TensorFlow CPU, as in `fit`; without
XLA, JAX would run every step op by op. `--mixed-precision` sets the mixed
policy for every configuration.
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np

from keras_adanas import Architecture, Ensemble, MixtureWeights
from keras_adanas.data import default_data_dir, load_images
from keras_adanas.distillation import Distillation
from keras_adanas.nasnet import NASNetA
from keras_adanas.search import Distiller, GroupedClippingSGD, build_candidates

try:
    import tensorflow as tf
except ImportError:  # JAX without TensorFlow
    tf = None


class StepTimer(keras.callbacks.Callback):
    """Seconds per step of one `fit` call, from the end of its first step
    (which also starts the data iterator) to the end of its last, and the
    CPU cores the process kept busy meanwhile (process CPU time / wall time).
    Keras turns each step's logs into Python numbers for this callback, so
    every step has finished when its time is taken, on every backend."""

    def on_train_begin(self, logs=None):
        self._first_end, self._steps = None, 0
        self.seconds_per_step = self.cores_busy = None

    def on_train_batch_end(self, batch, logs=None):
        if self._first_end is None:
            self._first_end, self._first_cpu = time.perf_counter(), time.process_time()
        else:
            self._steps += 1

    def on_train_end(self, logs=None):
        if self._steps:
            wall = time.perf_counter() - self._first_end
            self.seconds_per_step = wall / self._steps
            self.cores_busy = (time.process_time() - self._first_cpu) / wall


def interleaved_step_times(runs, steps, repeats):
    """Median seconds per training step, and median cores busy, of each
    `(model, dataset)` run.

    Every run first trains one warm-up epoch (tracing and compilation). Then
    the runs take turns, one timed `fit` of `steps` steps each per round, for
    `repeats` rounds: a slow spell of the machine then slows every run of a
    round alike instead of whichever figure happened to be measuring, so the
    ratios between runs hold even when the absolute rates drift.
    """
    for model, dataset in runs:
        model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    timers = [[] for _ in runs]
    for _ in range(repeats):
        for index, (model, dataset) in enumerate(runs):
            timer = StepTimer()
            model.fit(
                dataset,
                epochs=1,
                steps_per_epoch=steps + 1,
                callbacks=[timer],
                shuffle=False,  # the datasets shuffle (or not) themselves
                verbose=0,
            )
            timers[index].append(timer)
    return [
        (
            statistics.median(t.seconds_per_step for t in mine),
            statistics.median(t.cores_busy for t in mine),
        )
        for mine in timers
    ]


def device_names():
    """The backend's devices, e.g. `["cpu:0"]` or `["gpu:0"]`, lower case."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    if backend == "torch":
        import torch

        count = torch.cuda.device_count()
        return [f"gpu:{i}" for i in range(count)] if count else ["cpu:0"]
    return [d.name.lower().split("device:")[-1] for d in tf.config.list_logical_devices()]


def mixed_precision_policy():
    """`mixed_float16` where a GPU is visible, else `mixed_bfloat16`."""
    has_gpu = any(name.startswith("gpu") for name in device_names())
    return "mixed_float16" if has_gpu else "mixed_bfloat16"


class RepeatedBatches(keras.utils.PyDataset):
    """The same in-memory batches over and over (G's baseline without
    TensorFlow)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    @property
    def num_batches(self):
        return None  # endless, as `tf.data`'s `repeat()`

    def __getitem__(self, index):
        return self.batches[index % len(self.batches)]


def in_memory_copy(live, count):
    """The first `count` batches of the `live` pipeline, held in memory and
    repeated, in the same kind of pipeline."""
    if tf is None:
        return RepeatedBatches([live[i] for i in range(count)])
    batches = list(live.take(count))
    return tf.data.Dataset.from_tensor_slices(
        (tf.stack([x for x, _ in batches]), tf.stack([y for _, y in batches]))
    ).repeat()


def distiller(architectures, members=(), mixture="uniform", distillation="none", jit="auto"):
    candidates = build_candidates(architectures, 10, (32, 32, 3), len(members) + 1, seed=0)
    previous = None
    if members:
        previous = MixtureWeights(mixture, len(members), 10, name="previous")
    model = Distiller(
        candidates,
        members=members,
        previous_mixture=previous,
        mixture_kind=mixture,
        distillation=Distillation(distillation),
    )
    optimizer = GroupedClippingSGD(model.variable_groups(), learning_rate=0.01, momentum=0.9)
    model.compile(optimizer=optimizer, jit_compile=jit)
    optimizer.build(model.trainable_variables)
    return model


def frozen_members(architecture, count):
    members = []
    for k in range(count):
        (candidate,) = build_candidates([architecture], 10, (32, 32, 3), k + 1, seed=k)
        member = candidate.without_auxiliary_head(name=f"member_{k + 1}")
        member.trainable = False
        members.append(member)
    return members


def keras_applications_network(architecture, num_classes=10, image_shape=(32, 32, 3)):
    """Our NASNet-A's shape (stem, three stacks of N normal cells with a
    reduction cell between, head) built from keras.applications' NASNet-A
    cells, which are private functions of `keras.src.applications.nasnet`:
    this benchmark is their only user here."""
    from keras.src.applications import nasnet as applications

    f0 = architecture.stem_filters
    inputs = keras.Input(image_shape)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(3 * f0, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    # Their cells take p=None as p=ip without projecting it; the stem output
    # as p gets it projected to the cell's width, as our first cell does.
    p = x
    for stack in range(3):
        filters = f0 * 2**stack
        if stack > 0:
            x, p = applications._reduction_a_cell(x, p, filters, block_id=f"reduce_{stack}")
        for i in range(architecture.depth):
            x, p = applications._normal_a_cell(x, p, filters, block_id=f"{stack}_{i}")
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, logits, name="applications_nasnet")


def forward_flops(model):
    """2 x multiply-adds of the convolutions and dense layers, per image."""
    total = 0
    for layer in _all_layers(model):
        try:
            output = layer.output
        except (AttributeError, ValueError):
            continue  # a layer used more than once has no single output
        if not hasattr(output, "shape") or len(output.shape) < 2:
            continue
        out = [int(d) for d in output.shape[1:]]
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            c_in = int(layer.input.shape[-1])
            spatial = out[0] * out[1]
            total += spatial * kh * kw * c_in * layer.depth_multiplier
            total += spatial * c_in * layer.depth_multiplier * out[2]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += out[0] * out[1] * kh * kw * int(layer.input.shape[-1]) * layer.depth_multiplier
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += out[0] * out[1] * kh * kw * int(layer.input.shape[-1]) * out[2]
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.input.shape[-1]) * out[-1]
    return 2 * total


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def matmul_peak(size=2048, repeats=10):
    """Measured float32 matmul FLOP/s (best of `repeats`), on the backend's
    default device. Reading back one sum waits for the product without
    timing a copy of it."""
    a = keras.random.normal((size, size), seed=0)
    b = keras.random.normal((size, size), seed=1)

    def product():
        return float(keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.matmul(a, b))))

    product()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def inference_rates(members, images, batch_size, repeats, folder):
    """(exported ensemble, members one by one) images/s on `images`. Needs
    TensorFlow, for the SavedModel."""
    from keras_adanas.serving import export_saved_model

    mixture = MixtureWeights("scalar", len(members), 10, name="mixture")
    ensemble = Ensemble(members, mixture, classes=list(range(10)))
    path = os.path.join(folder, "ensemble_savedmodel")
    export_saved_model(ensemble, path)
    served = tf.saved_model.load(path)
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    weights = mixture.member_weights()
    functions = [tf.function(lambda x, m=m: m(x, training=False)) for m in members]

    def exported():
        for batch in batches:
            served.serve_float(batch).numpy()

    def one_by_one():
        for batch in batches:
            logits = sum(w * f(batch).numpy() for w, f in zip(weights, functions, strict=True))
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            shifted / shifted.sum(axis=1, keepdims=True)

    for run in (exported, one_by_one):
        run()  # warm-up
    times = [[], []]
    for _ in range(repeats):  # in turns, as `interleaved_step_times`
        for index, run in enumerate((exported, one_by_one)):
            start = time.perf_counter()
            run()
            times[index].append(time.perf_counter() - start)
    return [len(images) / statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="2@192")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per fit")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--only", default="ABCDEFG", help="figures to measure, e.g. 'AB'")
    parser.add_argument(
        "--jit-compile",
        choices=("auto", "true", "false"),
        default="auto",
        help="Keras' jit_compile for every step (auto: XLA on JAX and TF GPUs)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="mixed_float16 on a GPU, mixed_bfloat16 on a CPU",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--workdir", default="/tmp/adanas-throughput")
    args = parser.parse_args()

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    architecture = Architecture.parse(args.architecture)
    train = load_images(args.data, split="train")
    steps, repeats, batch = args.steps, args.repeats, args.batch_size
    live = train.training_dataset(batch, seed=0, epochs=1000, steps_per_epoch=steps + 1)
    results = {
        "backend": keras.backend.backend(),
        "devices": device_names(),
        "architecture": str(architecture),
        "batch_size": batch,
        "dtype_policy": keras.mixed_precision.global_policy().name,
    }

    def report(name, value, text):
        results[name] = value
        print(f"{name:<28} {value:>10.3f}  {text}", flush=True)

    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    runs = {"A": (distiller([architecture], jit=jit), live)}
    results["jit_compile"] = bool(runs["A"][0].jit_compile)  # "auto" resolved
    if "B" in args.only:
        runs["B"] = (distiller([architecture] * 2, jit=jit), live)
    members = frozen_members(architecture, 3)
    if "C" in args.only:
        runs["C"] = (distiller([architecture], members, "scalar", "adaptive", jit), live)
    if "D" in args.only:
        runs["D"] = (distiller([architecture], members, "uniform", "none", jit), live)
    if "E" in args.only:
        ours = NASNetA(architecture, 10, include_auxiliary_head=False, seed=0)
        theirs = keras_applications_network(architecture)
        for model in (ours, theirs):
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit,
            )
        runs["E_ours"], runs["E_theirs"] = (ours, live), (theirs, live)
        results["E_keras_params"] = theirs.count_params()
        results["E_our_params"] = ours.count_params()
    if "G" in args.only:
        in_memory = in_memory_copy(live, steps + 1)
        runs["G_memory"] = (runs["A"][0], in_memory)  # A's model, the same batches

    timings = interleaved_step_times(list(runs.values()), steps, repeats)
    measured = dict(zip(runs, timings, strict=True))
    seconds = {name: step for name, (step, _) in measured.items()}
    a = seconds["A"]
    report("A_images_per_second", batch / a, f"one {architecture} candidate alone")
    report("A_cores_busy", measured["A"][1], f"CPU time / wall time, of {os.cpu_count()} cores")
    if "B" in seconds:
        report("B_over_A", seconds["B"] / a, "two candidates in one step, step time (<= 1.9)")
        report("B_cores_busy", measured["B"][1], "CPU time / wall time")
    if "C" in seconds:
        report("C_over_A", seconds["C"] / a, "iteration 4, AKD + scalar weights (<= 2.2)")
    if "D" in seconds:
        report("D_over_A", seconds["D"] / a, "iteration 4, NOKD + uniform weights (<= 1.05)")
    if "E_ours" in seconds:
        ratio = seconds["E_theirs"] / seconds["E_ours"]
        report("E_ours_over_keras", ratio, "NASNet-A cells, images/s (>= 1)")
    if "G_memory" in seconds:
        report("G_live_over_memory", seconds["G_memory"] / a, "input pipeline (>= 0.95)")
    if "F" in args.only and tf is None:
        print("F skipped: the exported SavedModel needs TensorFlow", flush=True)
    elif "F" in args.only:
        os.makedirs(args.workdir, exist_ok=True)
        images = train.images[:1024].astype("float32")
        exported, one_by_one = inference_rates(members, images, 256, repeats, args.workdir)
        report("F_exported_over_members", exported / one_by_one, "inference images/s (>= 1)")
        results["F_exported_images_per_second"] = exported

    flops = forward_flops(NASNetA(architecture, 10, include_auxiliary_head=False))
    peak = matmul_peak()
    report("forward_GFLOPs_per_image", flops / 1e9, f"{architecture}, forward")
    report("matmul_peak_GFLOPs", peak / 1e9, "float32 matmul, 2048 x 2048")
    achieved = 3 * flops * batch / a
    report("A_fraction_of_peak", achieved / peak, "A's training FLOP/s / matmul peak")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
