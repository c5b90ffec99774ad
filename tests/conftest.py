import os


def _share_the_cores_among_xdist_workers():
    """Under `pytest -n N`, each worker's TensorFlow and PyTorch get
    cores // N threads per op instead of every core.

    Both size their thread pools to the whole machine, so two workers on two
    cores ran four threads that spun waiting for each other. The PyTorch pass
    of .ci/run took 140 s (241 s of CPU time) against 92 s (119 s) with one
    thread each; the TensorFlow pass 742 s against 670 s. Set before the
    first import of a backend (below), and inherited by the tests'
    subprocesses; a variable already set is left as it is.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("OMP_NUM_THREADS", threads)  # PyTorch
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)


_share_the_cores_among_xdist_workers()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_adanas.data import DATA_DIR_ENV  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def data_dir():
    return os.environ.get(DATA_DIR_ENV) or os.path.join(REPO, os.pardir, "shared", "data")


def data_file(name):
    path = os.path.join(data_dir(), name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not found in {data_dir()} (set {DATA_DIR_ENV})")
    return path


@pytest.fixture(scope="session")
def cifar10_path():
    return data_file("cifar10-dev.npz")


@pytest.fixture(scope="session")
def cifar10(cifar10_path):
    with np.load(cifar10_path) as archive:
        return {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="session")
def cifar100_path():
    return data_file("cifar100-sample.npz")


def is_png(path):
    with open(path, "rb") as file:
        return file.read(8) == PNG_SIGNATURE
