"""Choosing and entering a `tf.distribute` strategy.

The search runs under one strategy: every candidate, the frozen teacher, the
mixture weights and their optimizer are created in its scope, and Keras' `fit`
and `predict` then run each step on every replica. The batch size a user gives
is the global batch, split across the replicas; the learning rate scales with
it (see `keras_adanas.recipe.scaled_learning_rate`), not with the replicas.

This is the one module of the search that imports TensorFlow, and only when the
backend is TensorFlow: on JAX and PyTorch `"auto"` means no strategy.
"""

import contextlib
import json
import os

import keras
import numpy as np

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker")
_multi_worker_strategy = None


def _tf():
    import tensorflow as tf

    return tf


def _is_strategy(value):
    if keras.backend.backend() != "tensorflow":
        return type(value).__module__.startswith("tensorflow") and hasattr(value, "scope")
    return isinstance(value, _tf().distribute.Strategy)


def cluster_spec_from_environment():
    """The cluster `TF_CONFIG` describes, or None when it holds no cluster of
    two or more tasks."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"`TF_CONFIG` is not valid JSON ({error}). Received: {raw!r}") from None
    cluster = config.get("cluster") or {}
    tasks = sum(len(addresses) for addresses in cluster.values())
    return cluster if tasks > 1 else None


def resolve_strategy(strategy="auto"):
    """The `tf.distribute.Strategy` to run a search under, or None for none.

    Args:
        strategy: `"auto"`: `MultiWorkerMirroredStrategy` when `TF_CONFIG`
            describes a cluster, `MirroredStrategy` when more than one GPU is
            visible, none otherwise; `"default"`: none; `"mirrored"`:
            `MirroredStrategy` over all visible devices; `"multi_worker"`:
            `MultiWorkerMirroredStrategy` from `TF_CONFIG`; or a
            `tf.distribute.Strategy`, used as is. Every choice but `"auto"`
            and `"default"` needs the TensorFlow backend.

    Returns:
        A `tf.distribute.Strategy`, or None (the default strategy).

    A multi-worker strategy must be created before TensorFlow runs any
    operation in the process; this function creates it once and returns the
    same object on later calls, so calling it at the start of a program is
    enough.

    Example:

    >>> strategy = resolve_strategy("auto")  # None on a machine with one device
    """
    tensorflow_backend = keras.backend.backend() == "tensorflow"
    if _is_strategy(strategy):
        if not tensorflow_backend:
            raise ValueError(
                "A tf.distribute strategy needs the TensorFlow backend, but the Keras "
                f"backend is {keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow, "
                f"or pass strategy='auto'. Received: strategy={strategy!r}"
            )
        return strategy
    if not isinstance(strategy, str) or strategy not in STRATEGY_NAMES:
        raise ValueError(
            f"`strategy` must be one of {STRATEGY_NAMES} or a tf.distribute.Strategy. "
            f"Received: strategy={strategy!r}"
        )
    if strategy == "default":
        return None
    if not tensorflow_backend:
        if strategy == "auto":
            return None
        raise ValueError(
            f"strategy={strategy!r} needs the TensorFlow backend, but the Keras backend "
            f"is {keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow, or pass "
            "strategy='auto'."
        )
    tf = _tf()
    if strategy == "multi_worker" or (strategy == "auto" and cluster_spec_from_environment()):
        if strategy == "multi_worker" and cluster_spec_from_environment() is None:
            raise ValueError(
                "strategy='multi_worker' needs `TF_CONFIG` to describe a cluster of two "
                f"or more tasks. Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        global _multi_worker_strategy
        if _multi_worker_strategy is None:
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return _multi_worker_strategy
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return None


def strategy_scope(strategy):
    """`strategy.scope()`, or a context that does nothing for None."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def num_replicas(strategy):
    """Replicas the global batch is split across (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def worker_task(strategy):
    """`(task_type, task_id)` of a non-chief worker of a multi-worker
    strategy, or None for the chief or a single process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None or task_type == "chief":
        return None
    task_id = int(getattr(resolver, "task_id", 0) or 0)
    cluster = resolver.cluster_spec().as_dict()
    if task_type == "worker" and task_id == 0 and "chief" not in cluster:
        return None  # Worker 0 is the chief of a cluster without one.
    return task_type, task_id


def replicas_in_sync():
    """Replicas of the TF step being traced (1 outside one, or off TensorFlow).

    Keras' TF trainer sums the replicas' gradients, so each replica's loss
    must be its share of the global mean: Keras scales compiled losses by
    `1 / replicas` itself, and a model with its own `compute_loss` must do
    the same.
    """
    if keras.backend.backend() != "tensorflow":
        return 1
    return int(_tf().distribute.get_strategy().num_replicas_in_sync)


def spans_workers(strategy=None):
    """Whether a TF strategy's replicas span several processes.

    Args:
        strategy: a `tf.distribute.Strategy`; None for the strategy in scope
            (the default strategy outside any scope).
    """
    if keras.backend.backend() != "tensorflow":
        return False
    if strategy is None:
        strategy = _tf().distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return False  # The default strategy has no `worker_devices`.
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def uniform_per_replica(shape, seed_generator):
    """`keras.random.uniform(shape, seed=seed_generator)`, drawn otherwise on
    every replica.

    Under a multi-replica TF strategy every replica advances the same
    (mirrored) `seed_generator` in step, so plain draws would give every
    replica the same numbers; here each replica folds its id into the seed
    and draws with TensorFlow's stateless op. Anywhere else it is Keras' draw.

    Args:
        shape: the shape of the draw.
        seed_generator: a `keras.random.SeedGenerator`.

    Returns:
        A float32 tensor of values in [0, 1).
    """
    if keras.backend.backend() == "tensorflow":
        tf = _tf()
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            seed = tf.cast(seed_generator.next(), tf.int64)
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            seed = tf.random.experimental.stateless_fold_in(seed, replica)
            return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
    return keras.random.uniform(shape, seed=seed_generator, dtype="float32")


def all_reduce_sum(values):
    """Sums a list of tensors over the replicas inside a multi-replica TF
    step; returns it unchanged anywhere else."""
    if keras.backend.backend() != "tensorflow":
        return values
    tf = _tf()
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)


def average_over_replicas(variables):
    """Sets each variable, on every replica, to its mean over the replicas.

    Batch normalization's moving statistics are updated by each replica from
    its own share of the batch, so after training under a strategy every
    replica holds its own; the model each worker saves, and what selection
    predicts with, should hold their mean. Does nothing without a
    multi-replica TF strategy.

    Args:
        variables: list of float Keras variables created under the strategy.
    """
    if keras.backend.backend() != "tensorflow" or not variables:
        return
    tf = _tf()
    strategy = tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return

    def local_values():
        return tf.concat([tf.reshape(tf.cast(v.value, "float32"), [-1]) for v in variables], 0)

    # One collective for all of them: a replica reads its own copies here.
    mean = strategy.reduce("MEAN", strategy.run(local_values), axis=None)
    offset = 0
    for variable in variables:
        size = int(np.prod(variable.shape))
        variable.assign(tf.reshape(mean[offset : offset + size], variable.shape))
        offset += size
