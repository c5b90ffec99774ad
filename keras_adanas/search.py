"""One AdaNAS iteration: train every candidate together, then select one.

`Distiller` is the iteration's training model. It holds the candidates (the
students, each a `NASNetA` with its auxiliary head), the frozen members of the
previous ensemble (the teacher) and one `MixtureWeights` per candidate
ensemble `f_{i-1} + w_i h_j`. One compiled step per batch trains all of them:
its loss is the sum of every candidate's own loss and every candidate
ensemble's cross-entropy. The sum changes nothing about each part's gradient:
candidates share no variables, and member logits enter the ensembles through a
stop-gradient, so candidate j only ever receives the gradient of its own loss
and each mixture only that of its ensemble's loss. `GroupedClippingSGD` then
clips each candidate's gradient to norm 5 on its own.
"""

import dataclasses
import hashlib
import math
import time
import warnings

import keras
import numpy as np
from keras import ops

from keras_adanas.backup import IterationBackup, weights_digest
from keras_adanas.data import predict_images
from keras_adanas.distillation import Distillation, distillation_loss, teacher_logits
from keras_adanas.distribute import (
    all_reduce_sum,
    average_over_replicas,
    replicas_in_sync,
    spans_workers,
)
from keras_adanas.ensemble import MixtureWeights
from keras_adanas.nasnet import AUX_LOGITS, LOGITS, NASNetA, set_drop_path_schedule
from keras_adanas.nasnet.batch_norm import synchronized_batch_norm
from keras_adanas.recipe import (
    AUXILIARY_LOSS_WEIGHT,
    BASE_LEARNING_RATE,
    CLIP_NORM,
    MOMENTUM,
    SparseCategoricalCrossentropyWithSmoothing,
    learning_rate_schedule,
)
from keras_adanas.tracing import expected_traces


class GroupedClippingSGD(keras.optimizers.SGD):
    """SGD that clips the gradient of each group of variables to its own norm.

    `global_clipnorm` would clip all candidates together, so one candidate's
    huge gradient would shrink every other candidate's update; here each
    group's gradient is rescaled to norm at most `group_clipnorm` on its own.
    On TensorFlow each variable's update is one fused kernel computing
    Keras' SGD update, and outside a `tf.distribute` strategy the group's
    clip scale multiplies that kernel's learning rate rather than every
    gradient (the same update, one scalar product per group); elsewhere it
    is Keras' own update on the rescaled gradients.

    Args:
        groups: list of lists of variables; variables in no group are not
            clipped.
        group_clipnorm: float, the norm each group is clipped to.
        **kwargs: `keras.optimizers.SGD` arguments (no `clipnorm`,
            `global_clipnorm` or `clipvalue`).

    Example:

    >>> first, second = keras.Variable([3.0, 4.0]), keras.Variable([0.3, 0.4])
    >>> optimizer = GroupedClippingSGD([[first], [second]], group_clipnorm=1.0,
    ...                                learning_rate=1.0)
    >>> optimizer.apply([first.value, second.value], [first, second])
    >>> first.numpy(), second.numpy()  # [3, 4] / 5 clipped; [0.3, 0.4] not
    (array([2.4, 3.2], dtype=float32), array([0., 0.], dtype=float32))
    """

    def __init__(self, groups, group_clipnorm=CLIP_NORM, **kwargs):
        super().__init__(**kwargs)
        self.group_clipnorm = float(group_clipnorm)
        self._group_of = {id(v): g for g, group in enumerate(groups) for v in group}
        self._num_groups = len(groups)
        # Set during one `apply` only (see there).
        self._clip_scales = self._scaled_learning_rates = None

    def apply(self, grads, trainable_variables=None):
        # JAX's stateless step calls `apply(grads)` alone: the variables are
        # then the ones the optimizer was built with, in the same order.
        variables = (
            self._trainable_variables if trainable_variables is None else trainable_variables
        )
        grads = list(grads)
        if _folds_clip_scale() and not self.gradient_accumulation_steps:
            # TensorFlow, no strategy: `update_step` multiplies the fused
            # kernel's learning rate by each group's scale (one scalar op per
            # group) instead of each gradient (one full-size op per variable).
            # (Not when accumulating: each step's gradient is clipped before
            # it joins the accumulator, and `update_step` sees only the sum.)
            self._clip_scales = self._group_scales(grads, list(variables))
            self._scaled_learning_rates = {}
            try:
                return super().apply(grads, trainable_variables)
            finally:
                self._clip_scales = self._scaled_learning_rates = None
        replicas = replicas_in_sync()
        if replicas > 1:
            # Under a TF strategy each replica holds its share of the gradient
            # and Keras sums them after `apply`; the clipping norm is that of
            # the sum, so sum here, clip, and hand each replica 1/replicas of
            # the clipped sum for Keras to add up again.
            present = [i for i, grad in enumerate(grads) if grad is not None]
            summed = all_reduce_sum([grads[i] for i in present])
            for i, grad in zip(present, summed, strict=True):
                grads[i] = grad
        grads = self._clip_groups(grads, list(variables))
        if replicas > 1:
            grads = [None if g is None else g * (1.0 / replicas) for g in grads]
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        scale = (self._clip_scales or {}).get(self._var_key(variable))
        if not self._fuses_update(gradient, variable):
            if scale is not None:
                gradient = ops.multiply(gradient, ops.cast(scale, gradient.dtype))
            return super().update_step(gradient, variable, learning_rate)
        # TensorFlow's fused kernels compute Keras' SGD update (the same
        # formula, with or without Nesterov) in one op per variable instead
        # of Keras' five to seven element-wise ops and assignments: the
        # traced step of two 1@24 candidates has 11% fewer ops, and traces
        # and compiles that much sooner (`benchmarks/step_graph.py`).
        import tensorflow as tf

        learning_rate = tf.cast(learning_rate, variable.dtype)
        if scale is not None:
            # lr * (s * g) = (lr * s) * g: Keras' formula is linear in lr * g.
            # One product per group and dtype (the learning rate is the same
            # tensor throughout one `apply`).
            key = (id(scale), variable.dtype)
            if key not in self._scaled_learning_rates:
                self._scaled_learning_rates[key] = learning_rate * tf.cast(scale, variable.dtype)
            learning_rate = self._scaled_learning_rates[key]
        gradient = tf.cast(gradient, variable.dtype)
        if self.momentum == 0:
            tf.raw_ops.ResourceApplyGradientDescent(
                var=variable.handle, alpha=learning_rate, delta=gradient
            )
            return
        momentum = self.momentums[self._get_variable_index(variable)].value
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=momentum.handle,
            lr=learning_rate,
            grad=gradient,
            momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=self.nesterov,
        )

    def _fuses_update(self, gradient, variable):
        """Whether `update_step` updates `variable` with TensorFlow's fused
        kernel: on the TensorFlow backend, for a dense gradient of a
        TensorFlow variable (what Keras' TensorFlow optimizer hands
        `update_step`). Otherwise it runs Keras' update step."""
        if keras.config.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return isinstance(variable, tf.Variable) and not isinstance(gradient, tf.IndexedSlices)

    def _group_scales(self, grads, variables):
        """Returns `{self._var_key(variable): scale}` for every variable of a
        group with a gradient: `group_clipnorm / max(norm, group_clipnorm)`,
        `norm` being that of the group's whole gradient."""
        members = [[] for _ in range(self._num_groups)]
        for index, variable in enumerate(variables):
            group = self._group_of.get(id(variable))
            if group is not None and grads[index] is not None:
                members[group].append(index)
        scales = {}
        for indices in members:
            if not indices:
                continue
            halves = [_half_squared_norm(grads[i]) for i in indices]
            norm = ops.sqrt(2.0 * ops.sum(ops.stack(halves)))
            scale = self.group_clipnorm / ops.maximum(norm, self.group_clipnorm)
            scales.update((self._var_key(variables[i]), scale) for i in indices)
        return scales

    def _clip_groups(self, grads, variables):
        scales = self._group_scales(grads, variables)
        return [
            grad
            if grad is None or self._var_key(variable) not in scales
            else ops.multiply(grad, ops.cast(scales[self._var_key(variable)], grad.dtype))
            for grad, variable in zip(grads, variables, strict=True)
        ]

    def get_config(self):
        config = super().get_config()
        config["group_clipnorm"] = self.group_clipnorm
        return config


def _half_squared_norm(tensor):
    """`sum(tensor**2) / 2` in float32: one `L2Loss` op on TensorFlow, where
    a square and a sum take three (one per gradient of every candidate)."""
    tensor = ops.cast(tensor, "float32")
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.l2_loss(tensor)
    return ops.sum(ops.square(tensor)) / 2.0


def _folds_clip_scale():
    """Whether `GroupedClippingSGD` applies the clip scales in `update_step`:
    on TensorFlow outside any `tf.distribute` strategy. (Under one, the
    update runs in cross-replica context, where the replicas' scales are not
    at hand.)"""
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy()


class ThroughputTimer(keras.callbacks.Callback):
    """Times training after its first batch, which includes tracing and
    compilation, so `images_per_second` is the steady-state rate."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.images_per_second = None

    def on_train_begin(self, logs=None):
        self._start, self._first_batch_end, self._batches = time.perf_counter(), None, 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._first_batch_end is None:
            self._first_batch_end = time.perf_counter()

    def on_train_end(self, logs=None):
        end = time.perf_counter()
        if self._batches == 0:
            self.images_per_second = None
        elif self._batches > 1:
            seconds, batches = end - self._first_batch_end, self._batches - 1
        else:
            seconds, batches = end - self._start, self._batches
        self.images_per_second = batches * self.batch_size / max(seconds, 1e-9)


def candidate_key(index):
    return f"candidate_{index}"


def auxiliary_key(index):
    return f"candidate_{index}_aux"


def ensemble_key(index):
    return f"ensemble_{index}"


TEACHER_KEY = "teacher"


class Distiller(keras.Model):
    """The training model of one iteration (see the module docstring).

    Args:
        candidates: list of `NASNetA` with their auxiliary heads.
        members: list of the previous ensemble's frozen members (images ->
            logits), oldest first.
        previous_mixture: the previous ensemble's `MixtureWeights` (frozen),
            or None at iteration 1.
        mixture_kind: `"uniform"`, `"scalar"` or `"vector"`.
        distillation: a `Distillation`.
        label_smoothing: float, label smoothing of the candidates' losses.

    Call returns a dict: `candidate_j` and `candidate_j_aux` logits; in
    inference, or in training when mixture weights are learned,
    `ensemble_j` logits; `teacher` logits when distilling.
    """

    def __init__(
        self,
        candidates,
        members=(),
        previous_mixture=None,
        mixture_kind="uniform",
        distillation=None,
        label_smoothing=0.1,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.candidates = list(candidates)
        self.members = list(members)
        for member in self.members:
            member.trainable = False
        if previous_mixture is not None:
            previous_mixture.trainable = False
        self.previous_mixture = previous_mixture
        self.distillation = distillation or Distillation()
        num_classes = self.candidates[0].num_classes
        self.mixtures = [
            MixtureWeights(mixture_kind, len(self.members) + 1, num_classes, name=f"mixture_{j}")
            for j in range(len(self.candidates))
        ]
        self.learns_mixture = mixture_kind != "uniform"
        self.has_teacher = self.distillation.active and bool(self.members)
        self.candidate_loss = SparseCategoricalCrossentropyWithSmoothing(label_smoothing)
        self.ensemble_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.candidate_trackers = [
            keras.metrics.Mean(name=f"{candidate_key(j)}_loss") for j in range(len(candidates))
        ]
        # Uniform weights learn nothing, so their ensembles are not computed in
        # training and have no loss to report.
        self.ensemble_trackers = [
            keras.metrics.Mean(name=f"{ensemble_key(j)}_loss")
            for j in range(len(candidates) if self.learns_mixture else 0)
        ]
        self.built = True  # Candidates, members and mixtures are built already.

    def variable_groups(self):
        """One clipping group per candidate, then one per learned mixture."""
        groups = [list(c.trainable_variables) for c in self.candidates]
        groups += [list(m.trainable_variables) for m in self.mixtures if m.trainable_variables]
        return groups

    def call(self, images, training=False):
        needs_members = bool(self.members) and (
            not training or self.learns_mixture or self.has_teacher
        )
        member_logits = []
        if needs_members:
            # Frozen members: inference mode, no gradient.
            member_logits = [
                ops.stop_gradient(member(images, training=False)) for member in self.members
            ]
        outputs = {}
        if self.has_teacher:
            previous = None
            if self.distillation.mode == "adaptive":
                previous = self.previous_mixture(member_logits)
            outputs[TEACHER_KEY] = teacher_logits(self.distillation.mode, member_logits, previous)
        for j, candidate in enumerate(self.candidates):
            out = candidate(images, training=training)
            outputs[candidate_key(j)] = out[LOGITS]
            outputs[auxiliary_key(j)] = out[AUX_LOGITS]
            if not training or self.learns_mixture:
                outputs[ensemble_key(j)] = self.mixtures[j](
                    [*member_logits, ops.stop_gradient(out[LOGITS])]
                )
        return outputs

    def distillation_term(self, teacher, student):
        """`kd_weight * KD(teacher, student)`; no gradient reaches the teacher."""
        return self.distillation.weight * distillation_loss(
            teacher, student, self.distillation.temperature
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        # NASNetA's logits are float32 under any policy, but a model whose
        # logits layer follows a mixed policy gives float16/bfloat16 ones; the
        # losses, and the float32 regularization terms they join, are float32.
        y_pred = {key: ops.cast(value, "float32") for key, value in y_pred.items()}
        total = 0.0
        for j, candidate in enumerate(self.candidates):
            loss = _batch_mean(self.candidate_loss, y, y_pred[candidate_key(j)])
            loss = loss + AUXILIARY_LOSS_WEIGHT * _batch_mean(
                self.candidate_loss, y, y_pred[auxiliary_key(j)]
            )
            if self.has_teacher:
                loss = loss + self.distillation_term(y_pred[TEACHER_KEY], y_pred[candidate_key(j)])
            if candidate.losses:
                loss = loss + ops.sum(ops.stack(candidate.losses))
            self.candidate_trackers[j].update_state(loss)
            total = total + loss
            if self.learns_mixture:
                ensemble_loss = _batch_mean(self.ensemble_loss, y, y_pred[ensemble_key(j)])
                self.ensemble_trackers[j].update_state(ensemble_loss)
                total = total + ensemble_loss
        # The trackers hold this replica's own means; the loss to differentiate
        # is its share of the global mean (see `replicas_in_sync`).
        return total * (1.0 / replicas_in_sync())

    @property
    def metrics(self):
        return [*super().metrics, *self.candidate_trackers, *self.ensemble_trackers]

    def train_step(self, *args, **kwargs):
        # `(data)` on TensorFlow, `(state, data)` on JAX.
        logs = super().train_step(*args, **kwargs)
        if spans_workers():  # TensorFlow only
            # Keras' TF trainer averages a multi-worker step's logs with
            # `strategy.reduce("MEAN", value, axis=0)`, which needs an axis:
            # hand it each loss as a vector of one.
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def zero_grad(self, set_to_none=True):
        # PyTorch only: Keras' torch trainer calls `torch.nn.Module.zero_grad`
        # before each backward pass, which clears the parameters Keras
        # registered, keyed by variable path. The candidates' paths repeat
        # (each has a `stem_conv/kernel`), so all but one candidate's
        # gradients would add up from step to step; clear every variable's.
        for variable in self.trainable_variables:
            variable.value.grad = None

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer calls this before fit/evaluate/predict under a
        # strategy. Its own version reduces a first input batch across the
        # replicas, in one `strategy.reduce` call on an (images, labels) pair
        # that MultiWorkerMirroredStrategy refuses (Keras 3.15). A Distiller
        # has every layer built and compiles no loss or metric, so building
        # the optimizer is all there is to do, and it needs no data.
        if getattr(self, "_distribute_strategy", None) is None:
            return
        if self.optimizer is not None and not self.optimizer.built:
            with self._distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)


def _batch_mean(loss, y_true, y_pred):
    """The mean of a Keras loss over the batch, unscaled: calling a
    `keras.losses.Loss` under a TF strategy divides by the replicas already,
    which `Distiller.compute_loss` does once for its whole sum instead."""
    return ops.mean(loss.call(y_true, y_pred))


# Under this many images per replica, `"auto"` synchronizes batch normalization:
# the statistics of a few images are noisy.
SYNCHRONIZED_BELOW = 16


@dataclasses.dataclass(frozen=True)
class IterationConfig:
    """How an iteration trains.

    Args:
        mixture_kind: `"uniform"`, `"scalar"` or `"vector"`.
        distillation: a `Distillation`.
        batch_size: int, the global batch size.
        epochs: int or None, epochs per iteration (one of epochs and steps).
        steps: int or None, training steps per iteration.
        learning_rate: float, the learning rate at batch size 32 (scaled
            linearly with `batch_size`).
        augment: bool, whether to augment the training images.
        seed: int or None.
        jit_compile: bool or `"auto"`, as `keras.Model.compile`.
        synchronized_batch_norm: True, False or `"auto"`: whether batch
            normalization uses the statistics of the whole global batch
            under a multi-replica strategy (see `synchronizes_batch_norm`).
    """

    mixture_kind: str = "uniform"
    distillation: Distillation = Distillation()
    batch_size: int = 32
    epochs: int | None = 1
    steps: int | None = None
    learning_rate: float = BASE_LEARNING_RATE
    augment: bool = True
    seed: int | None = None
    jit_compile: bool | str = "auto"
    synchronized_batch_norm: bool | str = "auto"

    def synchronizes_batch_norm(self, replicas):
        """Whether training on `replicas` replicas synchronizes batch
        normalization: with `"auto"`, when there are several and each
        replica's share of the batch is under `SYNCHRONIZED_BELOW` images."""
        if replicas < 2:
            return False
        if self.synchronized_batch_norm == "auto":
            return self.batch_size // replicas < SYNCHRONIZED_BELOW
        return bool(self.synchronized_batch_norm)

    def schedule(self, num_examples):
        """Returns `(epochs, steps_per_epoch)` covering the iteration.

        With `steps`, the steps are split into epochs of at most one pass over
        the data, all of equal length (the total rounds up by less than the
        number of epochs).
        """
        per_pass = max(1, math.ceil(num_examples / self.batch_size))
        if self.steps is None:
            return int(self.epochs), per_pass
        epochs = math.ceil(self.steps / per_pass)
        return epochs, math.ceil(self.steps / epochs)


@dataclasses.dataclass
class IterationResult:
    """What an iteration produced.

    Attributes:
        chosen: int, index of the chosen candidate, or None when every
            candidate diverged.
        member: the chosen candidate's served model (images -> logits),
            frozen, or None.
        mixture: the chosen candidate ensemble's `MixtureWeights`, frozen, or
            None.
        candidates: list of dicts, one per candidate: `architecture`,
            `train_loss` (last epoch's mean; None for a diverged one, so the
            report stays strict JSON), `selection_loss` (None with a single
            candidate or for a diverged one), `diverged`.
        steps: int, training steps of the iteration.
        batch_size: int, the batch size it trained with.
        initial_epoch: int, epochs restored from a backup (0 if none).
        seconds: float, wall time of training and selection in this run.
        images_per_second: float or None, steady-state training throughput
            (images of the shared batches per second, after the first,
            compiling batch); None when this run trained no batch.
    """

    chosen: int | None
    member: keras.Model | None
    mixture: MixtureWeights | None
    candidates: list
    steps: int
    batch_size: int
    initial_epoch: int
    seconds: float
    images_per_second: float | None


def candidate_seed(seed, iteration, index):
    """The seed of candidate `index` of `iteration` in a search seeded `seed`.

    A hash of the three, so that no two candidates of a search share a seed
    (nor, through the per-layer offsets `NASNetA` adds, a kernel): an affine
    mix such as `seed * 1009 + iteration * 31 + index` gives the candidates of
    neighbouring iterations overlapping runs of layer seeds.

    Returns:
        An int in `[0, 2**31 - 2**20)`, room left for the layer offsets.
    """
    digest = hashlib.sha256(f"keras_adanas/{seed}/{iteration}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**31 - 2**20)


def build_candidates(architectures, num_classes, image_shape, iteration, seed, dtype=None):
    """Builds the iteration's untrained candidates, each with a unique name,
    under the dtype policy `dtype` (None: Keras' global policy)."""
    return [
        NASNetA(
            architecture,
            num_classes=num_classes,
            image_shape=image_shape,
            include_auxiliary_head=True,
            seed=None if seed is None else candidate_seed(seed, iteration, j),
            dtype=dtype,
            name=f"iteration_{iteration}_candidate_{j}",
        )
        for j, architecture in enumerate(architectures)
    ]


def moving_statistics(models):
    """The batch-normalization moving means and variances of `models`."""
    return [
        variable
        for model in models
        for variable in model.non_trainable_variables
        if variable.name in ("moving_mean", "moving_variance")
    ]


def select_candidate(selection_losses):
    """Index of the lowest finite selection loss, or None if none is finite."""
    losses = np.asarray(selection_losses, dtype="float64")
    finite = np.isfinite(losses)
    if not finite.any():
        return None
    return int(np.argmin(np.where(finite, losses, np.inf)))


def ensemble_crossentropy(logits, labels):
    """Mean cross-entropy of integer labels under logits, in float64 NumPy."""
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def is_out_of_memory(error):
    """Whether `error` is a backend's out-of-memory error (TF, JAX or PyTorch)."""
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ in ("ResourceExhaustedError", "OutOfMemoryError")
        or "RESOURCE_EXHAUSTED" in str(error)
    )


def run_iteration(
    iteration,
    candidates,
    train_data,
    selection_data,
    config,
    members=(),
    previous_mixture=None,
    callbacks=None,
    verbose=0,
    backup_dir=None,
):
    """Trains the candidates of one iteration together and selects one.

    A candidate whose training loss is not finite at the end has diverged: it
    is dropped with a warning and the others are selected among. Candidates
    built under `"mixed_float16"` train with a dynamic loss scale.

    Args:
        iteration: int, 1-based.
        candidates: list of `NASNetA` with auxiliary heads (see
            `build_candidates`).
        train_data: `LabeledImages` to train on.
        selection_data: `LabeledImages` to select on (unaugmented).
        config: an `IterationConfig`.
        members: the previous ensemble's frozen members.
        previous_mixture: the previous ensemble's `MixtureWeights` or None.
        callbacks: list of Keras callbacks for `fit`.
        verbose: 0, 1 or 2, as Keras' `fit`.
        backup_dir: a folder for epoch backups (`IterationBackup`), or None.
            A backup of this same training found there is restored and the
            training goes on from its epoch, on the batches it would have
            seen.

    Returns:
        An `IterationResult`; its `chosen` is None when every candidate
        diverged.
    """
    epochs, steps_per_epoch = config.schedule(len(train_data))
    total_steps = epochs * steps_per_epoch
    distiller = Distiller(
        candidates,
        members=members,
        previous_mixture=previous_mixture,
        mixture_kind=config.mixture_kind,
        distillation=config.distillation,
    )
    for candidate in candidates:
        set_drop_path_schedule(candidate, total_steps)
    learning_rate = learning_rate_schedule(total_steps, config.batch_size, config.learning_rate)
    optimizer = GroupedClippingSGD(
        distiller.variable_groups(), learning_rate=learning_rate, momentum=MOMENTUM
    )
    if any(c.dtype_policy.name == "mixed_float16" for c in candidates):
        # float16 gradients underflow without it; the wrapper unscales them
        # before the clipping, so the clip norm is that of the true gradient.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    distiller.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    # Built here, not lazily inside the first traced step: a step that
    # creates variables is traced twice, which took a third of the compile
    # time (21 s instead of 32 s for two 1@24/1@48 candidates on 2 CPUs).
    optimizer.build(distiller.trainable_variables)
    seed = None if config.seed is None else config.seed + iteration
    backup = None
    initial_epoch = 0
    if backup_dir is not None:
        signature = {
            "iteration": iteration,
            "candidates": [str(c.architecture) for c in candidates],
            "batch_size": config.batch_size,
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "seed": seed,
            # The ensemble it trains against: another search's backup of the
            # same iteration is not this one's.
            "teacher": weights_digest(
                [*members, *([previous_mixture] if previous_mixture is not None else [])]
            ),
        }
        backup = IterationBackup(backup_dir, signature)
        initial_epoch = backup.restore(distiller)
        if initial_epoch and verbose:
            print(
                f"Iteration {iteration}: restored the backup after epoch {initial_epoch}/{epochs}.",
                flush=True,
            )
    timer = ThroughputTimer(config.batch_size)
    start = time.perf_counter()
    history = None
    if initial_epoch < epochs:  # Keras' `fit` breaks when no epoch is left.
        dataset = train_data.training_dataset(
            config.batch_size,
            augment=config.augment,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            seed=seed,
        )
        synchronized = config.synchronizes_batch_norm(replicas_in_sync())
        with expected_traces(), synchronized_batch_norm(candidates, synchronized):
            history = distiller.fit(
                dataset,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                shuffle=False,  # The dataset shuffles each epoch itself.
                callbacks=[*(callbacks or []), timer, *([backup] if backup else [])],
                verbose=verbose,
            )
    average_over_replicas(moving_statistics(candidates))
    epoch_logs = backup.epoch_logs if backup else _epoch_logs(history.history)
    train_losses = [
        float(epoch_logs[-1][f"{candidate_key(j)}_loss"]) for j in range(len(candidates))
    ]
    diverged = [not math.isfinite(loss) for loss in train_losses]
    for j, candidate in enumerate(candidates):
        if diverged[j]:
            warnings.warn(
                f"Candidate {j} ({candidate.architecture}) of iteration {iteration} "
                f"diverged (training loss {train_losses[j]}); it is dropped.",
                stacklevel=2,
            )

    selection_losses = [None] * len(candidates)
    if len(candidates) > 1 and not all(diverged):
        predictions = predict_images(distiller, selection_data, max(config.batch_size, 256))
        selection_losses = [
            None
            if diverged[j]
            else ensemble_crossentropy(predictions[ensemble_key(j)], selection_data.labels)
            for j in range(len(candidates))
        ]
        chosen = select_candidate([np.nan if s is None else s for s in selection_losses])
    else:
        chosen = None if all(diverged) else 0
    seconds = time.perf_counter() - start
    member = mixture = None
    if chosen is not None:
        member = candidates[chosen].without_auxiliary_head(name=f"member_{iteration}")
        member.trainable = False
        mixture = distiller.mixtures[chosen]
        mixture.trainable = False
    return IterationResult(
        chosen=chosen,
        member=member,
        mixture=mixture,
        candidates=[
            {
                "architecture": str(c.architecture),
                "train_loss": None if diverged[j] else train_losses[j],
                "selection_loss": selection_losses[j],
                "diverged": diverged[j],
            }
            for j, c in enumerate(candidates)
        ],
        steps=total_steps,
        batch_size=config.batch_size,
        initial_epoch=initial_epoch,
        seconds=seconds,
        images_per_second=timer.images_per_second,
    )


def _epoch_logs(history):
    """Keras' `History.history` (lists per metric) as one dict per epoch."""
    epochs = len(next(iter(history.values()), []))
    return [{k: float(v[e]) for k, v in history.items()} for e in range(epochs)]
