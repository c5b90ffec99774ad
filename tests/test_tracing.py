import logging
import os
import subprocess
import sys

import keras
import pytest

from keras_adanas.tracing import RETRACING_MESSAGE, expected_traces

RETRACING = (
    "5 out of the last 9 calls to <function one_step_on_data_distributed> "
    f"{RETRACING_MESSAGE}. Tracing is expensive."
)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def tensorflow_log():
    logger = logging.getLogger("tensorflow")
    records = Records()
    logger.addHandler(records)
    yield records.messages
    logger.removeHandler(records)


def test_only_the_retracing_warning_is_dropped_and_only_inside(tensorflow_log):
    logger = logging.getLogger("tensorflow")
    with expected_traces():
        logger.warning(RETRACING)
        logger.warning("another warning")
    logger.warning(RETRACING)
    assert tensorflow_log == ["another warning", RETRACING]
    with pytest.raises(RuntimeError), expected_traces():
        raise RuntimeError
    assert logger.filters == []


SCRIPT = """
import sys
import keras
import numpy as np
from keras_adanas.data import load_images
from keras_adanas.inference import predict_images

def tiny_model():
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )

data = load_images(np.zeros((4, 8, 8, 1), "uint8"))
for _ in range(6):
    if sys.argv[1] == "keras":
        tiny_model().predict(data.images, verbose=0)
    else:
        predict_images(tiny_model(), data, 4)
print("done")
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's detector")
@pytest.mark.parametrize("predict", ["keras", "predict_images"])
def test_predicting_with_new_models_logs_no_retracing_warning(predict):
    # Each new model's predict step is traced once, and TensorFlow counts the
    # traces of all of them together: five new models make it warn, as a
    # plain `predict` shows. (A fresh process: it warns twice per process.)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, predict],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-2000:]
    assert (RETRACING_MESSAGE in result.stderr) == (predict == "keras")
