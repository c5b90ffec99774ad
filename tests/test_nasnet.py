import keras
import numpy as np
import pytest

from keras_adanas import Architecture, NASNetA
from keras_adanas.nasnet import AUX_LOGITS, LOGITS


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.fixture(scope="module")
def nasnet_6_at_768():
    return NASNetA("6@768", 10, include_auxiliary_head=False)


def test_reference_parameter_count(nasnet_6_at_768):
    assert trainable_count(nasnet_6_at_768) == 3_346_538


def test_reference_stage_shapes(nasnet_6_at_768):
    expected = {
        "stem_bn": (32, 32, 96),
        "cell_0_out": (32, 32, 192),
        "cell_5_out": (32, 32, 192),
        "reduction_cell_0_out": (16, 16, 256),
        "cell_6_out": (16, 16, 384),
        "cell_11_out": (16, 16, 384),
        "reduction_cell_1_out": (8, 8, 512),
        "cell_12_out": (8, 8, 768),
        "cell_17_out": (8, 8, 768),
    }
    for name, shape in expected.items():
        assert tuple(nasnet_6_at_768.get_layer(name).output.shape[1:]) == shape, name
    assert tuple(nasnet_6_at_768.output.shape) == (None, 10)


@pytest.mark.parametrize(
    "architecture, num_classes, image_shape",
    [
        ("1@24", 10, (32, 32, 3)),
        ("1@96", 100, (32, 32, 3)),
        ("2@192", 10, (32, 32, 3)),
        ("1@240", 7, (32, 32, 3)),
        ("2@48", 10, (28, 28, 1)),
        ("3@72", 2, (40, 24, 5)),
    ],
)
def test_architecture_count_equals_built_count(architecture, num_classes, image_shape):
    if keras.backend.backend() != "tensorflow" and architecture not in ("1@24", "3@72"):
        # Building costs 20 s or more on JAX; the counted arithmetic is the
        # same on every backend, which two of the builds show.
        pytest.skip("built on TensorFlow; 1@24 and 3@72 are built on every backend")
    arch = Architecture.parse(architecture)
    model = NASNetA(arch, num_classes, image_shape)
    served = model.without_auxiliary_head()
    assert trainable_count(served) == arch.count_params(num_classes, image_shape=image_shape)
    assert trainable_count(model) == arch.count_params(
        num_classes, image_shape=image_shape, include_auxiliary_head=True
    )
    assert trainable_count(model) > trainable_count(served)


def test_mnist_sized_grayscale_images():
    model = NASNetA("1@24", 10, (28, 28, 1))
    outputs = model(np.zeros((2, 28, 28, 1), "uint8"))
    assert tuple(outputs[LOGITS].shape) == (2, 10)
    assert tuple(outputs[AUX_LOGITS].shape) == (2, 10)
    assert tuple(model.get_layer("cell_2_out").output.shape[1:]) == (7, 7, 24)


@pytest.mark.parametrize(
    "image_shape, aux, message",
    [
        ((8, 8, 3), True, "at least 9x9"),
        ((32, 8, 3), True, "at least 9x9"),
        ((3, 3, 3), False, "at least 4x4"),
        ((32, 32), True, "image_shape"),
        ((32, 32, 0), True, "image_shape"),
    ],
)
def test_too_small_or_malformed_images(image_shape, aux, message):
    with pytest.raises(ValueError, match=message):
        NASNetA("1@24", 10, image_shape, include_auxiliary_head=aux)


def test_smallest_images_build():
    NASNetA("1@24", 10, (9, 9, 3))
    NASNetA("1@24", 10, (4, 4, 3), include_auxiliary_head=False)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_classes": 1}, ValueError, "num_classes=1"),
        ({"num_classes": "10"}, TypeError, "num_classes='10'"),
        ({"architecture": "1@25"}, ValueError, "filters=25"),
        ({"drop_path_keep_prob": 0.0}, ValueError, "drop_path_keep_prob=0.0"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay=-1.0"),
        ({"dtype": "float16"}, ValueError, "dtype='float16'"),
        ({"dtype": "int8_from_float32"}, ValueError, "mixed_bfloat16"),
        ({"dtype": 3}, ValueError, "dtype=3"),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    arguments = {"architecture": "1@24", "num_classes": 10, **kwargs}
    with pytest.raises(error, match=message):
        NASNetA(**arguments)


def test_auxiliary_output_only_in_training_model():
    model = NASNetA("1@24", 10, seed=0)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    outputs = model(images, training=True)
    assert set(outputs) == {LOGITS, AUX_LOGITS}
    served = model.without_auxiliary_head()
    logits = served(images)
    assert tuple(logits.shape) == (4, 10)
    assert all("aux" not in layer.name for layer in served.layers)
    # Same layers, same weights: the served model's logits are the training
    # model's logits at inference.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images)[LOGITS]),
        keras.ops.convert_to_numpy(logits),
        rtol=1e-6,
        atol=1e-6,
    )
    plain = NASNetA("1@24", 10, include_auxiliary_head=False)
    assert plain.without_auxiliary_head() is plain
    assert tuple(plain.output.shape) == (None, 10)


def test_layer_settings():
    model = NASNetA("1@24", 10)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)
    conv = model.get_layer("stem_conv")
    assert not conv.use_bias
    init = conv.kernel_initializer.get_config()
    assert (init["scale"], init["mode"], init["distribution"]) == (
        2.0,
        "fan_out",
        "truncated_normal",
    )
    # The reference's decay 5e-4 in `decay * sum(w**2) / 2`: Keras' L2(2.5e-4).
    kernel = conv.kernel.value
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(conv.kernel_regularizer(kernel)),
        keras.ops.convert_to_numpy(keras.regularizers.L2(2.5e-4)(kernel)),
        rtol=1e-6,
    )
    assert isinstance(conv.kernel_regularizer, keras.regularizers.L2)
    assert conv.kernel_regularizer.get_config() == {"l2": 2.5e-4}
    sep = next(layer for layer in model.layers if isinstance(layer, keras.layers.SeparableConv2D))
    assert sep.depthwise_regularizer is not None and sep.pointwise_regularizer is not None
    assert model.get_layer(LOGITS).use_bias


def test_kernel_initializer_is_keras_variance_scaling():
    from keras_adanas.nasnet.ops import kernel_initializer

    shape = (3, 3, 64, 256)
    init = kernel_initializer(seed=3)
    assert type(init) is keras.initializers.VarianceScaling
    values = keras.ops.convert_to_numpy(init(shape))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(init(shape)), values)
    other = keras.ops.convert_to_numpy(kernel_initializer(seed=4)(shape))
    assert not np.array_equal(other, values)
    # The reference's scaling: the truncated normal's standard deviation is
    # sqrt(scale / fan_out), fan_out = 3 * 3 * 256.
    target = np.sqrt(2.0 / (3 * 3 * 256))
    assert values.std() == pytest.approx(target, rel=0.02)
    assert abs(values.mean()) < 0.02 * target


def test_inputs_are_scaled_inside_the_model():
    model = NASNetA("1@24", 10, include_auxiliary_head=False)
    rescaling = model.get_layer("rescaling")
    scaled = keras.ops.convert_to_numpy(rescaling(np.array([0.0, 127.5, 255.0])))
    np.testing.assert_allclose(scaled, [-1.0, 0.0, 1.0], atol=1e-6)
    raw = np.full((1, 32, 32, 3), 200, np.uint8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(raw)),
        keras.ops.convert_to_numpy(model(raw.astype("float32"))),
    )


def test_keras_round_trip(tmp_path):
    model = NASNetA("1@24", 10, seed=3)
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / "nasnet.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, NASNetA)
    assert restored.architecture == Architecture(1, 24)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(images)[LOGITS]),
        keras.ops.convert_to_numpy(model(images)[LOGITS]),
        atol=1e-6,
    )


@pytest.mark.parametrize("size", [4, 5])
def test_factorized_reduction_reads_even_and_odd_pixels(size):
    from keras_adanas.nasnet.ops import LayerFactory, apply_factorized_reduction

    factory = LayerFactory(1, weight_decay=0.0, drop_path_keep_prob=1.0, total_steps=0, seed=3)
    inputs = keras.Input((size, size, 3))
    model = keras.Model(inputs, apply_factorized_reduction(inputs, factory, 5, name="fr"))
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    k1 = model.get_layer("fr_path1_conv").kernel.numpy()[0, 0]
    k2 = model.get_layer("fr_path2_conv").kernel.numpy()[0, 0]
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    expected = np.concatenate([x[:, ::2, ::2] @ k1, padded[:, 1::2, 1::2] @ k2], axis=-1)
    expected = expected / np.sqrt(1.0 + 1e-5)  # BN at its initial moving statistics
    half = -(-size // 2)
    assert tuple(model.output.shape) == (None, half, half, 5)
    actual = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, strides", [(8, 2), (7, 2), (6, 1)])
def test_average_pooling_leaves_the_padding_out_on_every_backend(size, strides):
    """TensorFlow's "same" average: zero padding split as (total // 2, rest),
    each window's sum divided by its count of real pixels. Keras' PyTorch
    backend repeats the edge instead where the padding is uneven."""
    from keras_adanas.nasnet import PaddingExcludedAveragePooling2D

    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    out = -(-size // strides)
    total = max((out - 1) * strides + 3 - size, 0)
    pads = ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0))
    padded, real = np.pad(x, pads), np.pad(np.ones_like(x), pads)
    expected = np.zeros((2, out, out, 3), "float32")
    for i in range(out):
        for j in range(out):
            window = np.s_[:, i * strides : i * strides + 3, j * strides : j * strides + 3]
            expected[:, i, j] = padded[window].sum((1, 2)) / real[window].sum((1, 2))
    pool = PaddingExcludedAveragePooling2D(3, strides=strides, padding="same")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pool(x)), expected, rtol=1e-5, atol=1e-6)
    # Reduction cells average with it (saved as its own registered class).
    model = NASNetA("1@24", 10)
    assert isinstance(model.get_layer("reduction_cell_0_comb_2_left_avg3_pool"), type(pool))


def test_auxiliary_whole_map_conv_is_the_reference_convolution():
    from keras_adanas.nasnet.ops import LayerFactory

    factory = LayerFactory(1, weight_decay=5e-4, drop_path_keep_prob=1.0, total_steps=0, seed=0)
    dense = factory.whole_map_conv(768, (2, 2), name="aux_conv")
    conv = factory.conv(768, (2, 2), padding="valid", name="reference")
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 128)).astype("float32")
    conv.build(x.shape)
    dense.build((None, 2 * 2 * 128))
    # The same initial distribution: the convolution's fan-out counts its area.
    assert dense.kernel.numpy().std() == pytest.approx(conv.kernel.numpy().std(), rel=0.03)
    assert dense.count_params() == conv.count_params()
    # The same function: the conv kernel flattened in (h, w, c) order.
    dense.kernel.assign(conv.kernel.numpy().reshape(512, 768))
    expected = keras.ops.convert_to_numpy(conv(x)).reshape(3, 768)
    actual = keras.ops.convert_to_numpy(dense(x.reshape(3, 512)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert dense.kernel_regularizer.get_config() == conv.kernel_regularizer.get_config()


def test_trains_through_a_smaller_last_batch():
    # A stride-2 1x1 convolution in the factorized reduction crashed
    # TensorFlow's oneDNN kernels (heap corruption) when the batch size changed.
    model = NASNetA("1@24", 10, (16, 16, 1), include_auxiliary_head=False, seed=0)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(40, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 10, size=40)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_in_half_and_gives_float32_logits(tmp_path, policy):
    model = NASNetA("1@24", 10, dtype=policy, seed=3)
    half = keras.dtype_policies.get(policy).compute_dtype
    assert model.dtype_policy.name == policy
    for layer in model.layers[1:]:  # after the input layer
        expected = "float32" if layer.name in (LOGITS, AUX_LOGITS) else policy
        assert layer.dtype_policy.name == expected, layer.name
    assert {keras.backend.standardize_dtype(w.dtype) for w in model.weights} == {"float32"}
    assert model.count_params() == NASNetA("1@24", 10).count_params()
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    probe = keras.Model(model.input, model.get_layer("cell_0_out").output)
    assert keras.backend.standardize_dtype(probe(images).dtype) == half
    outputs = model(images, training=True)
    assert {keras.backend.standardize_dtype(v.dtype) for v in outputs.values()} == {"float32"}

    path = str(tmp_path / "mixed.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # under the float32 global policy
    assert restored.get_config()["dtype"] == policy
    assert [layer.dtype_policy.name for layer in restored.layers] == [
        layer.dtype_policy.name for layer in model.layers
    ]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(images)[LOGITS]),
        keras.ops.convert_to_numpy(model(images)[LOGITS]),
    )


def test_dtype_none_follows_the_global_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = NASNetA("1@24", 10)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_config()["dtype"] == "mixed_bfloat16"
    assert model.get_layer("stem_conv").compute_dtype == "bfloat16"
