import keras
import numpy as np
import pytest

from keras_adanas import NASNetA
from keras_adanas.data import load_images
from keras_adanas.nasnet import LOGITS
from keras_adanas.recipe import (
    SparseCategoricalCrossentropyWithSmoothing,
    auxiliary_targets,
    compile_subnetwork,
    make_optimizer,
    scaled_learning_rate,
)


def test_label_smoothed_crossentropy_against_hand_computation():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], "float32")
    labels = np.array([0, 1])
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((2, 3), 0.1 / 3)
    targets[np.arange(2), labels] += 0.9
    expected = float(np.mean(-(targets * log_probs).sum(axis=1)))
    loss = SparseCategoricalCrossentropyWithSmoothing(0.1)
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        SparseCategoricalCrossentropyWithSmoothing(1.0)


def test_optimizer_recipe():
    assert scaled_learning_rate(32) == pytest.approx(0.025)
    assert scaled_learning_rate(256) == pytest.approx(0.2)
    optimizer = make_optimizer(total_steps=100, batch_size=64)
    assert optimizer.momentum == 0.9 and optimizer.global_clipnorm == 5.0
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    assert float(schedule(0)) == pytest.approx(0.05)
    assert float(schedule(50)) == pytest.approx(0.025, rel=1e-4)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="total_steps=0"):
        make_optimizer(total_steps=0, batch_size=32)


@pytest.mark.parametrize("dtype", [None, pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_training_lowers_the_loss_on_real_cifar_images(cifar10_path, dtype):
    keras.utils.set_random_seed(0)
    data = load_images(cifar10_path)
    subset = load_images(data.images[:256], data.labels[:256], classes=data.classes)
    model = NASNetA("1@24", subset.num_classes, seed=0, dtype=dtype)
    epochs, batch_size = 2, 32
    steps = epochs * len(subset) // batch_size
    compile_subnetwork(model, total_steps=steps, batch_size=batch_size)
    # Keras scales a float16 model's loss by itself.
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (dtype == "mixed_float16")

    evaluation = subset.evaluation_dataset(256).map(auxiliary_targets)
    before = model.evaluate(evaluation, verbose=0, return_dict=True)["loss"]
    training = subset.training_dataset(batch_size, seed=0).map(auxiliary_targets)
    history = model.fit(training, epochs=epochs, shuffle=False, verbose=0)
    after = model.evaluate(evaluation, verbose=0, return_dict=True)["loss"]
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert after < before
    assert np.isfinite(losses).all()
    # The drop-path schedule ran inside the compiled step.
    layer = next(layer for layer in model.layers if "drop_path" in layer.name)
    assert float(keras.ops.convert_to_numpy(layer.step)) == steps
    assert LOGITS in model.output
