import os

import numpy as np
import pytest

from keras_adanas.data import DATA_DIR_ENV

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
