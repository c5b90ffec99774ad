"""The SavedModel export on the TensorFlow and JAX backends (PyTorch's runs
under TensorFlow in a subprocess: tests/test_cli.py, tests/test_classifier.py)."""

import keras
import numpy as np
import pytest

from keras_adanas import Ensemble, MixtureWeights, NASNetA

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="PyTorch exports in a TensorFlow subprocess"
)


def test_saved_model_serves_the_ensembles_probabilities(tmp_path):
    from keras_adanas.serving import export_saved_model

    members = [
        NASNetA("1@24", 10, seed=seed).without_auxiliary_head(name=f"member_{seed + 1}")
        for seed in range(2)
    ]
    mixture = MixtureWeights("scalar", 2)
    mixture.weight.assign([0.25, 0.75])
    ensemble = Ensemble(members, mixture)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype="uint8")
    expected = keras.ops.convert_to_numpy(
        keras.ops.softmax(ensemble(images.astype("float32"), training=False))
    )

    export_saved_model(ensemble, tmp_path / "saved_model")
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    assert sorted(loaded.signatures) == ["serve", "serve_float", "serving_default"]
    default = loaded.signatures["serving_default"]
    # TensorFlow Serving's default signature takes the raw uint8 images.
    assert default.structured_input_signature[1]["images"].dtype == tf.uint8
    (served_by_default,) = default(images=tf.constant(images)).values()
    for served in (
        loaded.serve(images),
        loaded.serve_float(images.astype("float32")),
        served_by_default,
    ):
        np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)
