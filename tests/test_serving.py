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

    if keras.backend.backend() == "jax":
        # jax2tf lowers for the exporting platform alone unless told
        # otherwise; TensorFlow would then refuse to serve on a GPU a model
        # exported on a CPU.
        assert lowered_platforms(tmp_path / "saved_model") == {(b"CPU", b"CUDA")}


def lowered_platforms(folder):
    """The platforms of each jax2tf-lowered function in a SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((folder / "saved_model.pb").read_bytes())
    return {
        tuple(node.attr["platforms"].list.s)
        for function in saved.meta_graphs[0].graph_def.library.function
        for node in function.node_def
        if node.op == "XlaCallModule"
    }
