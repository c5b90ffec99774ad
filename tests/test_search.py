import keras
import numpy as np
import pytest

from keras_adanas import (
    Architecture,
    Distillation,
    Ensemble,
    MixtureWeights,
    NASNetA,
    load_images,
)
from keras_adanas.search import (
    Distiller,
    GroupedClippingSGD,
    IterationConfig,
    build_candidates,
    candidate_key,
    ensemble_crossentropy,
    ensemble_key,
    run_iteration,
    select_candidate,
)


def test_per_candidate_clipping():
    # Two candidates' variables; candidate A's gradient is huge.
    a = keras.Variable(np.zeros(4, "float32"))
    b = keras.Variable(np.zeros(3, "float32"))
    grad_a = np.full(4, 500.0, "float32")  # norm 1000
    grad_b = np.array([1.0, 2.0, 2.0], "float32")  # norm 3, under the clip norm
    # Gradients as the backend computes them: tensors (Keras' own optimizers
    # take no NumPy gradients on PyTorch).
    grads = [keras.ops.convert_to_tensor(g) for g in (grad_a, grad_b)]
    grouped = GroupedClippingSGD([[a], [b]], group_clipnorm=5.0, learning_rate=1.0)
    grouped.apply(grads, [a, b])
    # B moves by its whole gradient; A by its gradient clipped to norm 5.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), -grad_b, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(keras.ops.convert_to_numpy(a)), 5.0, rtol=1e-5)

    # Keras' global clipping would have shrunk B's update too: what we avoid.
    a2, b2 = keras.Variable(np.zeros(4, "float32")), keras.Variable(np.zeros(3, "float32"))
    keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=5.0).apply(grads, [a2, b2])
    assert np.linalg.norm(keras.ops.convert_to_numpy(b2)) < 0.1


@pytest.mark.parametrize(
    "momentum, nesterov",
    [(0.0, False), (0.9, False), (0.9, True)],
    ids=["plain", "momentum", "nesterov"],
)
@pytest.mark.parametrize("clipnorm", [1e9, 1.0], ids=["unclipped", "clipped"])
def test_grouped_update_equals_keras_sgd(momentum, nesterov, clipnorm):
    """With one group, the update is Keras' SGD update with Keras' global
    clipping, step after step."""
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=shape).astype("float32") for shape in [(3, 3, 4, 5), (7,)]]
    steps = [[rng.normal(size=w.shape).astype("float32") for w in initial] for _ in range(3)]
    kwargs = dict(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    ours, theirs = [keras.Variable(w) for w in initial], [keras.Variable(w) for w in initial]
    grouped = GroupedClippingSGD([ours], group_clipnorm=clipnorm, **kwargs)
    keras_sgd = keras.optimizers.SGD(global_clipnorm=clipnorm, **kwargs)
    for grads in steps:
        grouped.apply([keras.ops.convert_to_tensor(g) for g in grads], ours)
        keras_sgd.apply([keras.ops.convert_to_tensor(g) for g in grads], theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-6, atol=1e-7
        )


def test_grouped_clipping_sgd_round_trips_its_config():
    optimizer = GroupedClippingSGD([], group_clipnorm=2.5, learning_rate=0.1, momentum=0.9)
    restored = GroupedClippingSGD.from_config(optimizer.get_config())
    assert restored.group_clipnorm == 2.5 and restored.get_config() == optimizer.get_config()


def test_throughput_timer_without_a_batch_reports_none():
    from keras_adanas.search import ThroughputTimer

    timer = ThroughputTimer(batch_size=32)
    timer.on_train_begin()
    timer.on_train_end()
    assert timer.images_per_second is None


def test_each_accumulated_gradient_is_clipped_on_its_own():
    """With `gradient_accumulation_steps`, each step's group gradient is
    clipped before it joins the accumulator, on every backend."""
    rng = np.random.default_rng(1)
    initial = [rng.normal(size=shape).astype("float32") for shape in [(3, 4), (5,)]]
    steps = [[rng.normal(size=w.shape).astype("float32") * k for w in initial] for k in (1, 9)]
    kwargs = dict(learning_rate=0.1, momentum=0.9, gradient_accumulation_steps=2)
    ours, theirs = [keras.Variable(w) for w in initial], [keras.Variable(w) for w in initial]
    grouped = GroupedClippingSGD([ours], group_clipnorm=1.0, **kwargs)
    keras_sgd = keras.optimizers.SGD(**kwargs)
    for grads in steps:
        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        clipped = [g / max(norm, 1.0) for g in grads]
        grouped.apply([keras.ops.convert_to_tensor(g) for g in grads], ours)
        keras_sgd.apply([keras.ops.convert_to_tensor(g) for g in clipped], theirs)
    for a, b, start in zip(ours, theirs, initial, strict=True):
        assert not np.allclose(keras.ops.convert_to_numpy(a), start)  # one update was made
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-6, atol=1e-7
        )


def test_selection_picks_the_lowest_finite_loss():
    assert select_candidate([2.3, 1.1, 1.7]) == 1
    assert select_candidate([np.nan, 1.9, np.inf]) == 1
    assert select_candidate([np.nan, np.nan]) is None


def test_ensemble_crossentropy_against_hand_computation():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    expected = -(np.log(np.exp(2) / (np.exp(2) + 1)) + np.log(np.e / (1 + np.e))) / 2
    assert ensemble_crossentropy(logits, np.array([0, 1])) == pytest.approx(expected)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
def test_stop_gradients():
    import tensorflow as tf

    member = NASNetA("1@24", 3, (12, 12, 3), seed=1).without_auxiliary_head(name="member_1")
    previous = MixtureWeights("scalar", 1, 3, name="previous")
    candidate = NASNetA("1@24", 3, (12, 12, 3), seed=2, name="candidate")
    distiller = Distiller(
        [candidate], [member], previous, "scalar", Distillation("adaptive", weight=1.0)
    )
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0])
    member_variables = [v.value for v in member.weights]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(member_variables)
        outputs = distiller(images, training=True)
        ensemble_loss = distiller.ensemble_loss(labels, outputs[ensemble_key(0)])
        kd = distiller.distillation_term(outputs["teacher"], outputs[candidate_key(0)])
    # The ensemble loss reaches its mixture weights and nothing else.
    mixture_grad = tape.gradient(ensemble_loss, distiller.mixtures[0].weight.value)
    assert np.abs(mixture_grad.numpy()).sum() > 0
    for grad in tape.gradient(ensemble_loss, [v.value for v in candidate.trainable_weights]):
        assert grad is None or not np.any(grad.numpy())
    for grad in tape.gradient(ensemble_loss, member_variables):
        assert grad is None or not np.any(grad.numpy())
    # KD reaches the student, never the teacher.
    kd_grads = tape.gradient(kd, [v.value for v in candidate.trainable_weights])
    assert any(g is not None and np.any(g.numpy()) for g in kd_grads)
    for grad in tape.gradient(kd, member_variables):
        assert grad is None or not np.any(grad.numpy())


def test_nothing_from_earlier_members_is_computed_without_kd_and_learned_weights():
    member = NASNetA("1@24", 3, (12, 12, 3), seed=1).without_auxiliary_head(name="member_1")
    candidate = NASNetA("1@24", 3, (12, 12, 3), seed=2, name="candidate")
    distiller = Distiller([candidate], [member], MixtureWeights("uniform", 1), "uniform")
    calls = []
    member.call = lambda *args, **kwargs: calls.append(1)  # would break if called
    images = np.zeros((2, 12, 12, 3), "uint8")
    outputs = distiller(images, training=True)
    assert set(outputs) == {candidate_key(0), "candidate_0_aux"}
    assert not calls


def test_candidates_without_an_auxiliary_head_train_without_its_loss():
    """A recipe whose auxiliary weight is 0 builds candidates without the
    head: the candidate's loss is its smoothed cross-entropy (plus weight
    decay) alone, and the served member is the candidate under a new name."""
    (candidate,) = build_candidates(["1@24"], 3, (12, 12, 3), 1, seed=2, auxiliary_head=False)
    assert not candidate.include_auxiliary_head
    distiller = Distiller([candidate], label_smoothing=0.1, auxiliary_weight=0.4)
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0])
    outputs = distiller(images, training=False)
    assert set(outputs) == {candidate_key(0), ensemble_key(0)}
    logits = keras.ops.convert_to_numpy(outputs[candidate_key(0)]).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((4, 3), 0.1 / 3)
    targets[np.arange(4), labels] += 0.9
    expected = np.mean(-(targets * log_probs).sum(axis=1))
    decay = sum(float(keras.ops.convert_to_numpy(loss)) for loss in candidate.losses)
    loss = distiller.compute_loss(images, labels, outputs, training=False)
    assert float(keras.ops.convert_to_numpy(loss)) == pytest.approx(expected + decay, rel=1e-5)
    member = candidate.without_auxiliary_head(name="member_1")
    assert member.name == "member_1" and member.count_params() == candidate.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in member.trainable_weights)
    assert trainable == Architecture(1, 24).count_params(3, image_shape=(12, 12, 3))


def test_schedule_of_an_iteration():
    assert IterationConfig(epochs=3, batch_size=32).schedule(100) == (3, 4)
    assert IterationConfig(epochs=None, steps=10, batch_size=32).schedule(100) == (3, 4)
    assert IterationConfig(epochs=None, steps=3, batch_size=32).schedule(100) == (1, 3)


@pytest.fixture(scope="module")
def small_cifar(cifar10_path):
    data = load_images(cifar10_path)
    return load_images(data.images[:96], data.labels[:96], classes=data.classes)


def test_iteration_selects_the_candidate_with_the_lowest_ensemble_loss(small_cifar):
    member = NASNetA("1@24", 10, seed=5).without_auxiliary_head(name="member_1")
    previous = MixtureWeights("uniform", 1)
    candidates = build_candidates(["1@24", "1@48"], 10, (32, 32, 3), iteration=2, seed=0)
    config = IterationConfig(mixture_kind="scalar", epochs=None, steps=2, seed=0)
    result = run_iteration(
        2, candidates, small_cifar, small_cifar, config, members=[member], previous_mixture=previous
    )
    losses = [c.selection_loss for c in result.candidates]
    assert result.chosen == int(np.argmin(losses))
    assert [c.architecture for c in result.candidates] == ["1@24", "1@48"]
    assert result.steps == 2 and result.images_per_second > 0
    # The selection loss is the chosen ensemble's cross-entropy on the data.
    ensemble = Ensemble([member, result.member], result.mixture)
    logits = ensemble.predict(small_cifar.images, verbose=0)
    assert ensemble_crossentropy(logits, small_cifar.labels) == pytest.approx(
        losses[result.chosen], rel=1e-4
    )
    assert not result.member.trainable and not result.mixture.trainable
    assert result.member.name == "member_2"
    assert all("aux" not in layer.name for layer in result.member.layers)


def test_one_clipping_group_per_candidate_and_per_learned_mixture():
    member = NASNetA("1@24", 3, (12, 12, 3), seed=1).without_auxiliary_head(name="member_1")
    candidates = [NASNetA("1@24", 3, (12, 12, 3), seed=s, name=f"c{s}") for s in (2, 3)]
    distiller = Distiller(candidates, [member], MixtureWeights("scalar", 1, 3), "scalar")
    groups = distiller.variable_groups()
    assert len(groups) == 4  # two candidates, two candidate ensembles' mixtures
    assert [len(g) for g in groups[:2]] == [len(c.trainable_variables) for c in candidates]
    ids = [id(v) for group in groups for v in group]
    assert len(ids) == len(set(ids))  # disjoint
    assert set(ids) == {id(v) for v in distiller.trainable_variables}  # members frozen


def test_two_identical_candidates_train_identically():
    """Each candidate's step uses this step's gradient alone. (On PyTorch,
    Keras keys a model's parameters by variable path, and the candidates'
    paths repeat: `zero_grad` missed all but one candidate, whose gradients
    then added up from step to step.)"""
    candidates = [NASNetA("1@24", 3, (12, 12, 3), seed=2, name=f"c{j}") for j in (0, 1)]
    candidates[1].set_weights(candidates[0].get_weights())
    distiller = Distiller(candidates, mixture_kind="scalar")
    optimizer = GroupedClippingSGD(distiller.variable_groups(), learning_rate=0.1, momentum=0.9)
    # Two steps: tracing them costs more than running them eagerly, except on
    # JAX, whose eager mode dispatches op by op.
    distiller.compile(optimizer=optimizer, run_eagerly=keras.backend.backend() != "jax")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 12, 12, 3)).astype("float32")
    labels = rng.integers(0, 3, size=8)
    before = [keras.ops.convert_to_numpy(v) for v in candidates[0].trainable_variables]
    distiller.fit(images, labels, batch_size=4, epochs=1, shuffle=False, verbose=0)
    pairs = zip(candidates[0].trainable_variables, candidates[1].trainable_variables, strict=True)
    for first, second in pairs:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(second),
            keras.ops.convert_to_numpy(first),
            rtol=1e-5,
            atol=1e-7,
            err_msg=first.path,
        )
    assert any(
        not np.array_equal(keras.ops.convert_to_numpy(v), b)
        for v, b in zip(candidates[0].trainable_variables, before, strict=True)
    )


def test_trains_under_a_mixed_precision_policy():
    # The benchmark's `--mixed-precision`: a global policy. The networks
    # compute in bfloat16; their logits layers, and so the losses with the
    # float32 L2 terms, in float32.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        member = NASNetA("1@24", 3, (12, 12, 3), seed=1).without_auxiliary_head(name="member_1")
        (candidate,) = build_candidates(["1@24"], 3, (12, 12, 3), 2, seed=2)
        distiller = Distiller(
            [candidate],
            [member],
            MixtureWeights("scalar", 1, 3),
            "scalar",
            distillation=Distillation("adaptive"),
        )
        distiller.compile(optimizer=GroupedClippingSGD(distiller.variable_groups(), 0.01))
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(16, 12, 12, 3)).astype("float32")
        labels = rng.integers(0, 3, size=16)
        outputs = distiller(images[:2], training=True)
        assert candidate.get_layer("stem_conv").compute_dtype == "bfloat16"
        assert member.get_layer("stem_conv").compute_dtype == "bfloat16"
        assert keras.backend.standardize_dtype(outputs[candidate_key(0)].dtype) == "float32"
        history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["candidate_0_loss"]).all()


def test_candidates_of_different_iterations_share_no_kernel():
    """Each candidate's seed is a hash of (seed, iteration, index): no two
    candidates of a search start from the same kernel, though each layer's
    seed is the candidate's plus an offset."""
    candidates = [
        candidate
        for iteration in (1, 2, 3)
        for candidate in build_candidates(["1@24", "1@24"], 10, (32, 32, 3), iteration, seed=0)
    ]
    seen = {}
    for candidate in candidates:
        for variable in candidate.trainable_variables:
            if "kernel" not in variable.path:
                continue
            value = keras.ops.convert_to_numpy(variable)
            key = (value.shape, value.tobytes())
            assert key not in seen, f"{variable.path} repeats {seen[key]}"
            seen[key] = variable.path
    assert len(seen) > 100
