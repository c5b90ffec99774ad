"""`AdaNASClassifier`: the scikit-learn estimator running the AdaNAS search."""

import contextlib
import os

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from keras_adanas.data.sources import load_search_data
from keras_adanas.distribute import resolve_strategy, worker_task
from keras_adanas.io_utils import save_model_atomically
from keras_adanas.parameters import (
    check_callbacks,
    check_with_strategy,
    params_record,
    search_config,
)
from keras_adanas.predictions import EnsemblePredictions
from keras_adanas.presets import preset_arguments
from keras_adanas.project import (
    RUNTIME_OPTIONS,
    ProjectDirectory,
    check_same_data,
    data_fingerprints,
)
from keras_adanas.search import (
    IterationRecord,
    MemberRecord,
    Search,
    SearchState,
    check_first_candidate_fits,
)
from keras_adanas.search import saved as saved_search


class AdaNASClassifier(EnsemblePredictions, ClassifierMixin, BaseEstimator):
    """Grows an ensemble of NASNet-A subnetworks under a parameter budget.

    Each iteration, the generator proposes candidate architectures; those that
    would push the served ensemble over `budget` are dropped; the rest train
    together, each distilled from the ensemble so far; the candidate whose
    ensemble has the lowest loss on the selection data joins, frozen.

    Args:
        budget: max trainable parameters of the served ensemble (members and
            mixture weights): an int, a string like `"33M"` or `"500k"`, or None.
        generator: `"constant"`, `"dynamic"`, or a generator object
            (`keras_adanas.generators`).
        architecture: `"N@F"` (or `Architecture`) of the constant generator's
            candidates, or the dynamic generator's start; None sizes it to
            the run: DESIGN's 6@768 without a `time_limit`, a network that
            learns within the limit with one (`keras_adanas.search.sizing`).
        distillation: `"none"`, `"born_again"` or `"adaptive"`.
        kd_temperature, kd_weight: floats, the distillation temperature and the
            weight of its term.
        mixture_weights: `"uniform"`, `"scalar"` or `"vector"`.
        mixture_fit: how learned mixture weights are fitted, or None for the
            recipe's: `"training"` (in each step, on the candidate's
            training-mode logits: the paper), `"inference"` (in each step,
            on an inference-mode pass of the candidate) or `"refit"` (after
            training, on the selection data's served logits).
        max_iterations: int, most iterations (members) to grow.
        epochs_per_iteration, steps_per_iteration: int, how long each
            iteration trains (one of them; neither means 1 epoch).
        time_limit: the wall time `fit` may take once the data is loaded:
            seconds, or a string such as `"90s"`, `"10m"`, `"2h"`; or None.
            The search then times each iteration's training step and plans
            how many iterations run and how many steps each trains (its
            schedules spanning them), so that it ends within the limit with
            an ensemble of at least one member (`keras_adanas.search.planner`);
            `epochs_per_iteration`/`steps_per_iteration` are then ignored. A
            resumed search counts what its earlier runs spent. Refused with
            a strategy whose replicas span several workers.
        batch_size: int, the global batch size.
        recipe: `"auto"` (fitted to how long each member trains and to the
            images, `keras_adanas.recipe.recipe_for`) or `"paper"` (the
            paper's recipe exactly, as every paper preset).
        learning_rate, augment, cutout_size, drop_path_keep_prob,
            auxiliary_weight, label_smoothing, weight_decay, warmup,
            recompute_statistics: the recipe's knobs, each None for the
            recipe's value: the learning rate at batch 32 (scaled with
            `batch_size`); whether to pad, crop, flip and cut out
            (`keras_adanas.data.CIFARAugmentation`); the cutout's side in
            pixels (0: none); the drop-path keep probability (1: none); the
            auxiliary loss weight; the label smoothing; the kernels' L2 decay
            `d` (the reference's `d * sum(w**2) / 2`); the fraction of each
            member's steps of learning-rate warm-up; whether batch-norm
            statistics are recomputed on the training images after each
            member trains.
        directory: a project directory, or None. The search records its
            arguments there, backs up the iteration in progress after every
            epoch and writes each finished iteration; fitting again with the
            same arguments and data resumes (see `keras_adanas.project`).
        overwrite: bool, whether `fit` deletes the files a search wrote in
            `directory` (nothing else) and starts anew.
        warm_start: bool, whether `fit` on a fitted classifier grows its
            ensemble further instead of starting anew.
        jit_compile: bool or `"auto"`, as `keras.Model.compile`.
        dtype_policy: the policy new members compute under (`"float32"`,
            `"mixed_float16"`, `"mixed_bfloat16"`), or None for Keras'
            global one. Weights and logits stay float32.
        strategy: `"auto"`, `"default"`, `"mirrored"`, `"multi_worker"` or a
            `tf.distribute.Strategy` (`keras_adanas.distribute`); `batch_size`
            must divide evenly among its replicas.
        synchronized_batch_norm: True, False or `"auto"` (when a replica's
            share of the batch is under 16 images): whether batch
            normalization uses the whole global batch's statistics.
        tensorboard: bool, whether each iteration writes TensorBoard logs to
            `directory/logs/iteration_NNN`.
        seed: int in [0, 2**32 - 1] or None, for initializers, drop path,
            shuffling and augmentation.
        verbose: 0 (silent), 1 (progress bars) or 2 (a line per epoch).

    Attributes:
        ensemble_: the fitted `Ensemble` (images -> logits).
        classes_: array of the class labels (the sorted distinct labels).
        members_: list of dicts, one per member: `iteration`, `architecture`,
            `params`, `weight`.
        history_: list of dicts, one per iteration (its `report.json`).
        stop_reason_: str, why the search stopped.

    Example:

    >>> clf = AdaNASClassifier(budget="1M", architecture="1@96", max_iterations=3)
    >>> clf.fit("cifar10-dev.npz").score("cifar10-dev.npz")
    """

    def __init__(
        self,
        budget=None,
        generator="constant",
        architecture=None,
        distillation="none",
        kd_temperature=1.0,
        kd_weight=1.0,
        mixture_weights="uniform",
        mixture_fit=None,
        max_iterations=10,
        epochs_per_iteration=None,
        steps_per_iteration=None,
        time_limit=None,
        batch_size=32,
        recipe="auto",
        learning_rate=None,
        augment=None,
        cutout_size=None,
        drop_path_keep_prob=None,
        auxiliary_weight=None,
        label_smoothing=None,
        weight_decay=None,
        warmup=None,
        recompute_statistics=None,
        directory=None,
        overwrite=False,
        warm_start=False,
        jit_compile="auto",
        dtype_policy=None,
        strategy="auto",
        synchronized_batch_norm="auto",
        tensorboard=False,
        seed=None,
        verbose=1,
    ):
        self.budget = budget
        self.generator = generator
        self.architecture = architecture
        self.distillation = distillation
        self.kd_temperature = kd_temperature
        self.kd_weight = kd_weight
        self.mixture_weights = mixture_weights
        self.mixture_fit = mixture_fit
        self.max_iterations = max_iterations
        self.epochs_per_iteration = epochs_per_iteration
        self.steps_per_iteration = steps_per_iteration
        self.time_limit = time_limit
        self.batch_size = batch_size
        self.recipe = recipe
        self.learning_rate = learning_rate
        self.augment = augment
        self.cutout_size = cutout_size
        self.drop_path_keep_prob = drop_path_keep_prob
        self.auxiliary_weight = auxiliary_weight
        self.label_smoothing = label_smoothing
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.recompute_statistics = recompute_statistics
        self.directory = directory
        self.overwrite = overwrite
        self.warm_start = warm_start
        self.jit_compile = jit_compile
        self.dtype_policy = dtype_policy
        self.strategy = strategy
        self.synchronized_batch_norm = synchronized_batch_norm
        self.tensorboard = tensorboard
        self.seed = seed
        self.verbose = verbose

    @classmethod
    def from_preset(cls, preset, **overrides):
        """A classifier with the arguments of a named configuration
        (`keras_adanas.presets`), `overrides` replacing some.

        Example:

        >>> clf = AdaNASClassifier.from_preset("smoke", directory="runs/smoke")
        """
        known = cls().get_params(deep=False)
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise TypeError(
                f"Unknown AdaNASClassifier arguments: {unknown}. Expected some of {sorted(known)}"
            )
        return cls(**preset_arguments(preset, **overrides))

    # === Fitting ===

    def fit(self, data, y=None, validation_data=None, callbacks=None):
        """Runs the search, or resumes it.

        Everything is checked before anything trains or is written: the
        arguments, the data, and, with a `directory`, that it holds the same
        search on the same data (or `overwrite=True`). An iteration whose
        candidates all diverge is skipped with a warning; one that runs out of
        memory is retried with half the batch size, down to 8.

        Args:
            data: training data, anything `keras_adanas.data.load_images`
                accepts (its `"train"` split for sources with splits).
            y: labels when `data` is an array of images.
            validation_data: selection data, as `data` or a pair `(x, y)`;
                None selects on the training data without augmentation.
            callbacks: list of Keras callbacks for each iteration's training.

        Returns:
            self.
        """
        config = search_config(self.get_params(deep=False))
        callbacks = check_callbacks(callbacks)
        # First: a multi-worker strategy must exist before TF runs any op.
        strategy = resolve_strategy(self.strategy)
        check_with_strategy(self.get_params(deep=False), strategy)
        project = None
        if self.directory is not None:
            task = worker_task(strategy)
            # Workers other than the chief keep their own files, so that they
            # never write over the chief's and each can resume its own backup.
            folder = os.fspath(self.directory)
            if task is not None:
                folder = os.path.join(folder, f".worker-{task[0]}-{task[1]}")
            project = ProjectDirectory(folder)
        with project.lock() if project is not None else contextlib.nullcontext():
            self._search(config, data, y, validation_data, callbacks, strategy, project)
        return self

    def _search(self, config, data, y, validation_data, callbacks, strategy, project):
        """`fit` once the project directory (if any) is locked."""
        state = self._state_to_grow(project)
        train, selection = load_search_data(data, y, validation_data, classes=state.classes)
        config = config.for_data(len(train), train.image_shape)
        if state.ensemble is not None and tuple(state.ensemble.input_shape[1:]) != (
            train.image_shape
        ):
            raise ValueError(
                "The ensemble being grown takes images of shape "
                f"{tuple(state.ensemble.input_shape[1:])}. Received: images of "
                f"shape {train.image_shape}"
            )
        fingerprints = data_fingerprints(train, selection)
        if project is not None and not (self._starts_anew() or self._grows_itself()):
            record = project.recorded_search()
            if record is not None:
                check_same_data(project.path, record["data"], fingerprints)
        if state.ensemble is None:
            check_first_candidate_fits(config, (train.num_classes, train.image_shape), self.budget)

        # === Nothing was written before this point ===
        if project is not None:
            project.start(self._params_record(), fingerprints, anew=self._starts_anew())
        if state.ensemble is not None:
            self._set_fitted(state)
        search = Search(
            config,
            train,
            selection,
            state,
            strategy=strategy,
            project=project,
            callbacks=callbacks,
            publish=self._publish,
            log=self._log,
            spent_seconds=self._spent_seconds(project, state),
        )
        state = search.run()
        if state.ensemble is None:
            raise RuntimeError(
                "The search produced no member: every candidate diverged. Try a "
                "lower `learning_rate`."
            )
        self._set_fitted(state)

    def _state_to_grow(self, project):
        """This classifier's state with `warm_start`, else what the directory
        holds (with the same arguments), else an empty one. Writes nothing."""
        if self._grows_itself():
            return self._fitted_state()
        if project is None or self._starts_anew():
            return SearchState()
        known = self.get_params(deep=False)
        defaults = type(self)()._params_record()
        return saved_search.resumable_state(
            project, self._params_record(), defaults, known, self._log
        )

    def _fitted_state(self):
        return SearchState.of_ensemble(
            self.ensemble_,
            [MemberRecord.from_json(m) for m in self.members_],
            [IterationRecord.from_json(r) for r in self.history_],
            getattr(self, "stop_reason_", None),
        )

    def _spent_seconds(self, project, state):
        """What earlier runs of the search being resumed spent (0 unless
        resuming a directory's search)."""
        if project is None or self._starts_anew() or self._grows_itself():
            return 0.0
        return sum(record.seconds for record in state.history)

    def _starts_anew(self):
        """Whether `fit` deletes what the directory holds (never a warm start)."""
        return bool(self.overwrite) and not self._grows_itself()

    def _grows_itself(self):
        """Whether `fit` grows this fitted classifier's ensemble (`warm_start`)."""
        return bool(self.warm_start) and hasattr(self, "ensemble_")

    def _publish(self, state):
        """Takes the search's state as the fitted state; returns the metadata
        saved with the ensemble."""
        if state.ensemble is not None:
            self._set_fitted(state)
        return saved_search.metadata(self._params_record(), state)

    def _set_fitted(self, state):
        self.ensemble_ = state.ensemble
        self.classes_ = np.asarray(state.ensemble.classes)
        self.members_ = [m.to_json() for m in state.member_records]
        self.history_ = [r.to_json() for r in state.history]
        self.stop_reason_ = state.stop_reason

    # === Persistence ===

    def save(self, path):
        """Saves the fitted classifier as one `.keras` file (`path`), atomically."""
        self._check_fitted()
        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"`path` must end in '.keras'. Received: path={path!r}")
        if os.path.isdir(path):
            raise ValueError(f"`path` is a folder, not a .keras file. Received: path={path!r}")
        self.ensemble_.metadata = saved_search.metadata(self._params_record(), self._fitted_state())
        save_model_atomically(self.ensemble_, path)

    @classmethod
    def load(cls, path):
        """Loads a classifier saved by `save` (a `.keras` file), or a project
        directory's ensemble. It predicts as the saved one; with
        `warm_start=True` its `fit` grows the ensemble further. How it ran
        (`directory`, `overwrite`, `verbose`, ...) is not restored."""
        saved = saved_search.read(path, cls().get_params(deep=False))
        params = {k: v for k, v in saved.params.items() if k not in RUNTIME_OPTIONS}
        if isinstance(params.get("generator"), dict):
            params["generator"] = keras.saving.deserialize_keras_object(params["generator"])
        classifier = cls(**params)
        classifier._set_fitted(saved.state)
        return classifier

    def export(self, path):
        """Writes a TensorFlow SavedModel serving class probabilities
        (`keras_adanas.serving.export_saved_model`): `serve` takes uint8
        images `(N, H, W, C)`, `serve_float` float32 ones in [0, 255]; a file
        or a folder holding anything but a SavedModel is refused."""
        self._check_fitted()
        from keras_adanas.serving import export_saved_model

        export_saved_model(self.ensemble_, path)

    def _params_record(self):
        return params_record(self.get_params(deep=False))

    def _log(self, message):
        if self.verbose:
            print(message, flush=True)
