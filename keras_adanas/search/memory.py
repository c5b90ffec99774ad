"""Retrying an iteration that runs out of memory with half the batch."""

import dataclasses
import warnings

from keras_adanas.recipe import scaled_learning_rate

# An iteration that runs out of memory retries with half the batch size, down
# to this (or the user's batch size, if smaller).
MIN_BATCH_SIZE_AFTER_OOM = 8


def is_out_of_memory(error):
    """Whether `error` is a backend's out-of-memory error (TF, JAX or PyTorch)."""
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ in ("ResourceExhaustedError", "OutOfMemoryError")
        or "RESOURCE_EXHAUSTED" in str(error)
    )


def retry_out_of_memory(train, iteration, config, replicas):
    """Calls `train(config)`, halving `config.batch_size` each time it runs
    out of memory.

    The smaller batch is rounded down to a multiple of `replicas` (among
    which it is split); the learning rate follows it (it is given at batch
    32). Each retry warns.

    Args:
        train: a callable of an `IterationConfig`.
        iteration: int, for the messages.
        config: the `IterationConfig` to try first.
        replicas: int, replicas of the strategy.

    Returns:
        What `train` returns.

    Raises:
        MemoryError: out of memory at the smallest batch it tries.

    Example:

    >>> result = retry_out_of_memory(lambda c: run_iteration(..., c), 3, config, 1)
    """
    floor = min(MIN_BATCH_SIZE_AFTER_OOM, config.batch_size)
    while True:
        try:
            return train(config)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            smaller = config.batch_size // 2 // replicas * replicas
            if smaller < floor:
                raise MemoryError(
                    f"Iteration {iteration} ran out of memory at batch size "
                    f"{config.batch_size}, and retries stop at batch size {floor}. "
                    "Use smaller candidates (`architecture`) or a device with more "
                    f"memory. ({type(error).__name__}: {error})"
                ) from error
            warnings.warn(
                f"Iteration {iteration} ran out of memory at batch size "
                f"{config.batch_size}; retrying with batch size {smaller} and "
                "learning rate "
                f"{scaled_learning_rate(smaller, config.learning_rate):g}.",
                stacklevel=4,
            )
            config = dataclasses.replace(config, batch_size=smaller)
