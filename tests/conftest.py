import os

import keras
import numpy as np
import pytest


def _share_the_cores_among_xdist_workers():
    """Under `pytest -n N` on the PyTorch backend, each worker's PyTorch gets
    cores // N threads instead of every core.

    PyTorch sizes its thread pool to the whole machine, so two workers on two
    cores ran four threads that spun waiting for each other: the PyTorch pass
    of .ci/run took 140 s (241 s of CPU time) against 92 s (119 s) with one
    thread each. TensorFlow is left as it is: with one thread per op
    (`TF_NUM_INTRAOP_THREADS=1`), its pass took 670 s against 742 s in one
    run and 827 s against 783 s in another, no clear gain, and its rounding
    changed enough to fail tests/test_distribute.py (see the test there).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


_share_the_cores_among_xdist_workers()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA = os.path.join(REPO, "tests", "data")
"""Real CIFAR samples committed with the tests (their sources: tests/data/README.md)."""
CIFAR10_SAMPLE = os.path.join(DATA, "cifar10-sample.npz")
CIFAR100_SAMPLE = os.path.join(DATA, "cifar100-sample.npz")


@pytest.fixture(scope="session")
def cifar10_path():
    return CIFAR10_SAMPLE


@pytest.fixture(scope="session")
def cifar10(cifar10_path):
    with np.load(cifar10_path) as archive:
        return {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="session")
def cifar100_path():
    return CIFAR100_SAMPLE


def is_png(path):
    with open(path, "rb") as file:
        return file.read(8) == PNG_SIGNATURE
