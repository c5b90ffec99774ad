"""`AdaNASClassifier`: the scikit-learn estimator running the AdaNAS search."""

import contextlib
import dataclasses
import importlib.util
import json
import math
import numbers
import os
import re
import warnings

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from keras_adanas.architecture import Architecture
from keras_adanas.data import load_images, predict_images
from keras_adanas.distillation import Distillation
from keras_adanas.distribute import (
    num_replicas,
    resolve_strategy,
    strategy_scope,
    worker_task,
)
from keras_adanas.ensemble import MIXTURE_KINDS, Ensemble
from keras_adanas.generators import get_generator, propose
from keras_adanas.io_utils import check_folder_path, save_model_atomically
from keras_adanas.nasnet import (
    recompute_batch_statistics,
    resolve_dtype_policy,
    validate_image_shape,
)
from keras_adanas.presets import preset_arguments
from keras_adanas.project import ENSEMBLE_FILE, ProjectDirectory, data_fingerprint
from keras_adanas.recipe import scaled_learning_rate
from keras_adanas.search import (
    IterationConfig,
    build_candidates,
    ensemble_crossentropy,
    is_out_of_memory,
    run_iteration,
)

PREDICT_BATCH_SIZE = 128
_BUDGET_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGbB]?)\s*$")
_BUDGET_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
# Seeds are 32-bit, as scikit-learn's `random_state`.
MAX_SEED = 2**32 - 1
# Arguments that say how a search runs here and now, not what it computes:
# `load` does not restore them (a saved classifier never writes to, or
# clears, the directory it was trained in unless told so again).
_RUNTIME_OPTIONS = (
    "directory",
    "overwrite",
    "warm_start",
    "verbose",
    "strategy",
    "tensorboard",
    "jit_compile",
)
# Arguments that may change between a search and its resumption.
_RESUMABLE = (*_RUNTIME_OPTIONS, "max_iterations")
# An iteration that runs out of memory retries with half the batch size, down
# to this (or the user's batch size, if smaller).
MIN_BATCH_SIZE_AFTER_OOM = 8


def parse_budget(budget):
    """Parses a parameter budget: an int, or a string like `"33M"`, `"3.3M"`, `"500k"`.

    Args:
        budget: None (no budget), a positive int, or a str: a number with an
            optional unit, `k` (thousand), `M` (million) or `G`/`B`
            (billion), in either case; commas and underscores are ignored.

    Returns:
        An int, or None for no budget.

    Example:

    >>> parse_budget("3.3M"), parse_budget("500k"), parse_budget("1_000")
    (3300000, 500000, 1000)
    """
    if budget is None:
        return None
    if isinstance(budget, bool):
        raise TypeError(
            f"`budget` must be an int or a string like '33M'. Received: budget={budget!r}"
        )
    if isinstance(budget, numbers.Integral):
        value = int(budget)
    elif isinstance(budget, str):
        match = _BUDGET_PATTERN.match(budget.replace(",", "").replace("_", ""))
        if not match:
            raise ValueError(
                "`budget` must be a parameter count like 3346538, '33M', '3.3M' or "
                f"'500k'. Received: budget={budget!r}"
            )
        value = int(round(float(match.group(1)) * _BUDGET_UNITS[match.group(2).lower()]))
    else:
        raise TypeError(
            "`budget` must be an int or a string like '33M'. Received: "
            f"budget={budget!r} of type {type(budget).__name__}"
        )
    if value < 1:
        raise ValueError(f"`budget` must be positive. Received: budget={budget!r}")
    return value


def mixture_params(kind, num_members, num_classes):
    """Parameters of the mixture weights of an ensemble of `num_members`."""
    return {"uniform": 0, "scalar": num_members, "vector": num_members * num_classes}[kind]


class AdaNASClassifier(ClassifierMixin, BaseEstimator):
    """Grows an ensemble of NASNet-A subnetworks under a parameter budget.

    Each iteration, the generator proposes candidate architectures; those that
    would push the served ensemble over `budget` are dropped; the rest train
    together, each distilled from the ensemble so far; the candidate whose
    ensemble has the lowest loss on the selection data joins, frozen.

    Args:
        budget: max trainable parameters of the served ensemble (members
            without auxiliary heads, plus mixture weights): an int, a string
            like `"33M"`, `"3.3M"`, `"500k"`, or None for no budget.
        generator: `"constant"`, `"dynamic"`, or a generator object (see
            `keras_adanas.generators`).
        architecture: `"N@F"` (or `Architecture`) a named generator uses: the
            constant architecture, or the dynamic generator's start.
        distillation: `"none"`, `"born_again"` or `"adaptive"`.
        kd_temperature: float, the distillation temperature.
        kd_weight: float, the weight of the distillation term.
        mixture_weights: `"uniform"`, `"scalar"` or `"vector"`.
        max_iterations: int, most iterations (members) to grow.
        epochs_per_iteration: int, epochs each iteration trains; None with
            `steps_per_iteration` None means 1.
        steps_per_iteration: int, steps each iteration trains, instead of
            `epochs_per_iteration`.
        batch_size: int, the global batch size.
        learning_rate: float, the learning rate at batch size 32, scaled
            linearly with `batch_size`.
        augment: bool, whether to apply the CIFAR augmentation in training
            (`keras_adanas.data.CIFARAugmentation`: pad and random crop,
            horizontal flip, cutout, scaled to the image size).
        directory: path of a project directory, or None. The search records
            its arguments there before training, backs up the iteration in
            progress after every epoch, and writes each finished iteration's
            member and report and the ensemble so far (`ensemble.keras`).
            Fitting again with the same directory and arguments resumes: the
            finished iterations are loaded, the interrupted one goes on from
            its last epoch. Other arguments or other data are an error unless
            `overwrite=True`.
        overwrite: bool, whether `fit` discards what `directory` holds (the
            files a search writes, nothing else) and starts anew.
        warm_start: bool, whether `fit` on a fitted classifier grows its
            ensemble further (up to `max_iterations` members) instead of
            starting anew.
        jit_compile: bool or `"auto"`, as `keras.Model.compile` (on TensorFlow,
            `"auto"` uses XLA only when an accelerator is visible).
        dtype_policy: the dtype policy new members compute under:
            `"float32"`, `"mixed_float16"` (a GPU's tensor cores; the loss is
            scaled dynamically), `"mixed_bfloat16"`, or None for Keras' global
            policy. Weights and logits stay float32. It is off by default
            because on a CPU both mixed policies train slower (see
            `benchmarks/throughput.py --mixed-precision`).
        strategy: `"auto"`, `"default"`, `"mirrored"`, `"multi_worker"` or a
            `tf.distribute.Strategy` (TensorFlow backend): see
            `keras_adanas.distribute.resolve_strategy`. `"auto"` mirrors over
            several GPUs and across the workers `TF_CONFIG` describes.
            `batch_size` is the global batch; it must divide evenly among the
            replicas. On a multi-worker cluster every worker runs `fit`; the
            chief writes `directory`, the others write under
            `directory/.worker-<type>-<id>`.
        synchronized_batch_norm: True, False or `"auto"`: whether, under a
            strategy of several replicas, batch normalization normalizes
            with the statistics of the whole global batch (Keras'
            `BatchNormalization(synchronized=True)`) instead of each
            replica's share. `"auto"` synchronizes when a replica's share is
            under 16 images. Nothing changes on one device.
        tensorboard: bool, whether each iteration's training writes
            TensorBoard logs to `directory/logs/iteration_NNN` (needs a
            `directory`).
        seed: int or None, for initializers, drop path, shuffling and
            augmentation.
        verbose: 0 (silent), 1 (iteration lines and progress bars) or 2
            (iteration lines and one line per epoch).

    Attributes:
        ensemble_: the fitted `Ensemble` (images -> logits).
        classes_: array of the class labels.
        members_: list of dicts, one per member: `iteration`, `architecture`,
            `params`, `weight`.
        history_: list of dicts, one per iteration: candidates with their
            losses, the chosen one, wall time and throughput.
        stop_reason_: why the search stopped.

    Example:

    >>> clf = AdaNASClassifier(budget="1M", architecture="1@96", max_iterations=3)
    >>> clf.fit("cifar10-dev.npz").score("cifar10-dev.npz")
    """

    def __init__(
        self,
        budget=None,
        generator="constant",
        architecture="6@768",
        distillation="none",
        kd_temperature=1.0,
        kd_weight=1.0,
        mixture_weights="uniform",
        max_iterations=10,
        epochs_per_iteration=None,
        steps_per_iteration=None,
        batch_size=32,
        learning_rate=0.025,
        augment=True,
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
        self.max_iterations = max_iterations
        self.epochs_per_iteration = epochs_per_iteration
        self.steps_per_iteration = steps_per_iteration
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.augment = augment
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
        """A classifier with the arguments of a named configuration.

        Args:
            preset: a name from `keras_adanas.presets.PRESETS` (`"nokd"`,
                `"w-akd"`, `"dynamic-1@240-akd"`, `"smoke"`, ...).
            **overrides: arguments that replace the preset's, for example
                `steps_per_iteration=20_000` or `directory="runs/c10"`.

        Returns:
            An unfitted `AdaNASClassifier`.

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
        """Runs the search.

        Everything is checked before anything trains or is written: the
        arguments, the data, and, with a `directory`, that it holds the same
        search on the same data (or `overwrite=True`).

        An iteration whose candidates all diverge (non-finite loss) is skipped
        with a warning and the ensemble so far is kept; one that runs out of
        memory is retried with half the batch size (and learning rate), down
        to a batch of 8.

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
        settings = self._validated_settings()
        callbacks = _validated_callbacks(callbacks)
        # First: a multi-worker strategy must exist before TF runs any op.
        strategy = resolve_strategy(self.strategy)
        if self.batch_size % num_replicas(strategy):
            raise ValueError(
                f"`batch_size` is the global batch and must divide evenly among the "
                f"{num_replicas(strategy)} replicas of the strategy. Received: "
                f"batch_size={self.batch_size}"
            )
        if (
            resolve_dtype_policy(self.dtype_policy).name == "mixed_float16"
            and num_replicas(strategy) > 1
        ):
            # Keras' LossScaleOptimizer decides whether to skip a step from
            # each replica's own gradients (or the first replica's), while
            # GroupedClippingSGD sums the replicas' gradients inside `apply`:
            # replicas could disagree on an overflow and the sum go inf.
            raise ValueError(
                "`dtype_policy='mixed_float16'` (loss scaling) trains on one device "
                f"only; the strategy has {num_replicas(strategy)} replicas. Use "
                "'mixed_bfloat16' or `strategy='default'`. Received: "
                f"dtype_policy={self.dtype_policy!r}"
            )
        if self.tensorboard and self.directory is None:
            raise ValueError(
                "`tensorboard=True` writes its logs under `directory`; pass one. "
                "Received: directory=None"
            )
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "`tensorboard=True` needs the tensorboard package: "
                '`pip install "keras-adanas[tensorboard]"`. Received: tensorboard=True'
            )
        project = None
        if self.directory is not None:
            task = worker_task(strategy)
            # Workers other than the chief keep their own files, so that they
            # never write over the chief's and each can resume its own backup.
            project = ProjectDirectory(
                self.directory
                if task is None
                else os.path.join(os.fspath(self.directory), f".worker-{task[0]}-{task[1]}")
            )
        with project.lock() if project is not None else contextlib.nullcontext():
            return self._fit_in_project(
                data, y, validation_data, callbacks, settings, strategy, project
            )

    def _fit_in_project(self, data, y, validation_data, callbacks, settings, strategy, project):
        """`fit` once the project directory (if any) is locked."""
        resumed = self._resumable_state(project)
        classes = resumed["classes"] if resumed else None
        train = load_images(data, y, split="train", classes=classes)
        if train.labels is None:
            raise ValueError(
                "`fit` needs labels: pass `y` with an array of images, or a source "
                "that holds them. Received: y=None"
            )
        if len(np.unique(train.labels)) < 2:
            raise ValueError(
                "The training data must hold at least 2 classes. Received: labels "
                f"that are all {train.classes[int(train.labels[0])]!r}"
            )
        validate_image_shape(train.image_shape)  # before anything is written
        selection = train
        if validation_data is not None:
            selection = load_images(
                *_validation_pair(validation_data), split="test", classes=train.classes
            )
            if selection.image_shape != train.image_shape:
                raise ValueError(
                    "`validation_data` images must have the training images' shape "
                    f"{train.image_shape}. Received: {selection.image_shape}"
                )
            if selection.labels is None:
                raise ValueError("`validation_data` needs labels. Received: no labels")
        if resumed and tuple(resumed["ensemble"].input_shape[1:]) != train.image_shape:
            raise ValueError(
                "The ensemble being grown takes images of shape "
                f"{tuple(resumed['ensemble'].input_shape[1:])}. Received: images of "
                f"shape {train.image_shape}"
            )
        fingerprint = {
            "train": data_fingerprint(train),
            "selection": None if selection is train else data_fingerprint(selection),
        }
        self._check_same_data(project, fingerprint)
        state = resumed or {"ensemble": None, "history": [], "member_info": []}
        self._check_budget_allows_a_candidate(settings, state, train)

        # === Nothing was written before this point ===
        if project is not None:
            project.create()
            if self.overwrite and not self._grows_itself():
                project.clear()
            else:
                project.remove_temporary_files()
            project.record_search(self._params_record(), fingerprint)
        ensemble = state["ensemble"]
        members = list(ensemble.members) if ensemble else []
        mixture = ensemble.mixture_weights if ensemble else None
        history = list(state["history"])
        architectures = [Architecture.parse(m["architecture"]) for m in state["member_info"]]
        if ensemble is not None:
            self._set_fitted(ensemble, ensemble.classes, state["member_info"], history)
        self.stop_reason_ = f"reached max_iterations={self.max_iterations}"
        config = IterationConfig(
            mixture_kind=self.mixture_weights,
            distillation=settings["distillation"],
            batch_size=self.batch_size,
            epochs=settings["epochs"],
            steps=self.steps_per_iteration,
            learning_rate=float(self.learning_rate),
            augment=bool(self.augment),
            seed=self.seed,
            jit_compile=self.jit_compile,
            synchronized_batch_norm=self.synchronized_batch_norm,
        )
        for iteration in range(len(history) + 1, self.max_iterations + 1):
            fitting, dropped = self._candidates_within_budget(
                settings, architectures, iteration, train
            )
            if not fitting:
                self.stop_reason_ = (
                    f"no candidate fits the budget of {settings['budget']:,} parameters "
                    f"at iteration {iteration} (proposed: "
                    f"{', '.join(f'{a} ({p:,})' for a, p in dropped)})"
                )
                self._log(f"Stopping: {self.stop_reason_}.")
                break
            self._log(
                f"Iteration {iteration}/{self.max_iterations}: training "
                f"{', '.join(str(a) for a in fitting)}"
                + (f" (over budget: {', '.join(str(a) for a, _ in dropped)})" if dropped else "")
            )
            result = self._train_iteration(
                iteration,
                fitting,
                (train, selection),
                config,
                (members, mixture),
                callbacks,
                project,
                strategy,
            )
            report = _iteration_report(iteration, result)
            history.append(report)
            if result.chosen is None:
                warnings.warn(
                    f"Every candidate of iteration {iteration} diverged; the iteration "
                    "is skipped and the ensemble so far is kept.",
                    stacklevel=2,
                )
                if ensemble is not None:
                    self.history_ = history
                    ensemble.metadata = self._metadata()
                if project is not None:
                    project.write_iteration(report, ensemble)
                continue
            members.append(result.member)
            architectures.append(Architecture.parse(report["architecture"]))
            mixture = result.mixture
            ensemble = Ensemble(
                members, mixture, classes=train.classes, class_names=train.class_names
            )
            member_info = self._member_info(architectures, mixture, train, history)
            self._set_fitted(ensemble, train.classes, member_info, history)
            ensemble.metadata = self._metadata()
            if project is not None:
                project.write_iteration(report, ensemble, member=result.member)
            self._log(_iteration_summary(report, member_info, mixture))
        if ensemble is None:
            raise RuntimeError(
                "The search produced no member: every candidate diverged. Try a "
                "lower `learning_rate`."
            )
        return self

    def _train_iteration(
        self, iteration, architectures, data, config, ensemble, callbacks, project, strategy
    ):
        """`run_iteration` on new candidates under `strategy`, retried with
        half the batch size each time it runs out of memory (rounded down to
        a multiple of the replicas, among which the batch is split).

        `data` is `(train, selection)`, `ensemble` `(members, mixture)`.
        """
        train, selection = data
        members, mixture = ensemble
        floor = min(MIN_BATCH_SIZE_AFTER_OOM, config.batch_size)
        while True:
            iteration_callbacks = list(callbacks)
            if self.tensorboard:
                iteration_callbacks.append(
                    keras.callbacks.TensorBoard(project.tensorboard_dir(iteration))
                )
            try:
                with strategy_scope(strategy):
                    candidates = build_candidates(
                        architectures,
                        train.num_classes,
                        train.image_shape,
                        iteration,
                        self.seed,
                        dtype=self.dtype_policy,
                    )
                    return run_iteration(
                        iteration,
                        candidates,
                        train,
                        selection,
                        config,
                        members=members,
                        previous_mixture=mixture,
                        callbacks=iteration_callbacks,
                        verbose=self.verbose,
                        backup_dir=None if project is None else project.backup_dir,
                    )
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                replicas = num_replicas(strategy)
                smaller = config.batch_size // 2 // replicas * replicas
                if smaller < floor:
                    raise MemoryError(
                        f"Iteration {iteration} ran out of memory at batch size "
                        f"{config.batch_size}, and retries stop at batch size {floor}. "
                        "Use smaller candidates (`architecture`) or a device with more "
                        f"memory. ({type(error).__name__}: {error})"
                    ) from error
                warnings.warn(
                    f"Iteration {iteration} ran out of memory at batch size "
                    f"{config.batch_size}; retrying with batch size {smaller} and "
                    "learning rate "
                    f"{scaled_learning_rate(smaller, config.learning_rate):g}.",
                    stacklevel=3,
                )
                config = dataclasses.replace(config, batch_size=smaller)

    def _validated_settings(self):
        """Checks every argument before any work; returns derived settings."""
        _check_int("max_iterations", self.max_iterations, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        if self.epochs_per_iteration is not None and self.steps_per_iteration is not None:
            raise ValueError(
                "Pass one of `epochs_per_iteration` and `steps_per_iteration`. Received: "
                f"epochs_per_iteration={self.epochs_per_iteration}, "
                f"steps_per_iteration={self.steps_per_iteration}"
            )
        if self.epochs_per_iteration is not None:
            _check_int("epochs_per_iteration", self.epochs_per_iteration, minimum=1)
        if self.steps_per_iteration is not None:
            _check_int("steps_per_iteration", self.steps_per_iteration, minimum=1)
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, numbers.Real)
            or not math.isfinite(self.learning_rate)
            or self.learning_rate <= 0
        ):
            raise ValueError(
                f"`learning_rate` must be a positive number. Received: "
                f"learning_rate={self.learning_rate!r}"
            )
        if self.mixture_weights not in MIXTURE_KINDS:
            raise ValueError(
                f"`mixture_weights` must be one of {MIXTURE_KINDS}. Received: "
                f"mixture_weights={self.mixture_weights!r}"
            )
        for name in ("augment", "warm_start", "overwrite", "tensorboard"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(
                    f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}"
                )
        if self.verbose not in (0, 1, 2) or isinstance(self.verbose, bool):
            raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={self.verbose!r}")
        if not (
            isinstance(self.synchronized_batch_norm, (bool, np.bool_))
            or self.synchronized_batch_norm == "auto"
        ):
            raise ValueError(
                "`synchronized_batch_norm` must be True, False or 'auto'. Received: "
                f"synchronized_batch_norm={self.synchronized_batch_norm!r}"
            )
        if self.jit_compile not in (True, False, "auto"):
            raise ValueError(
                f"`jit_compile` must be True, False or 'auto'. Received: "
                f"jit_compile={self.jit_compile!r}"
            )
        if self.dtype_policy is not None and not isinstance(
            self.dtype_policy, (str, keras.DTypePolicy)
        ):
            raise TypeError(
                "`dtype_policy` must be a policy name, a `keras.DTypePolicy` or None. "
                f"Received: dtype_policy={self.dtype_policy!r}"
            )
        resolve_dtype_policy(self.dtype_policy, argument="dtype_policy")
        if self.seed is not None:
            _check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        if self.directory is not None and not isinstance(self.directory, (str, os.PathLike)):
            raise TypeError(
                f"`directory` must be a path or None. Received: directory={self.directory!r}"
            )
        if self.directory is not None:
            if not os.fspath(self.directory).strip():
                # The current folder, not a project folder of its own.
                raise ValueError(
                    "`directory` must name a folder for the search's files; an empty "
                    f"or blank path is not one. Received: directory={self.directory!r}"
                )
            check_folder_path(self.directory, "directory")
        for name in ("kd_temperature", "kd_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
        Architecture.parse(self.architecture)
        return {
            "budget": parse_budget(self.budget),
            "generator": get_generator(self.generator, self.architecture),
            "distillation": Distillation(
                self.distillation, float(self.kd_temperature), float(self.kd_weight)
            ),
            "epochs": self.epochs_per_iteration
            if self.epochs_per_iteration is not None or self.steps_per_iteration is not None
            else 1,
        }

    def _candidates_within_budget(self, settings, architectures, iteration, train):
        proposals = propose(settings["generator"], architectures, iteration)
        budget = settings["budget"]
        counts = [
            a.count_params(train.num_classes, image_shape=train.image_shape) for a in proposals
        ]
        if budget is None:
            return proposals, []
        used = sum(
            a.count_params(train.num_classes, image_shape=train.image_shape) for a in architectures
        )
        used += mixture_params(self.mixture_weights, len(architectures) + 1, train.num_classes)
        fitting = [a for a, c in zip(proposals, counts, strict=True) if used + c <= budget]
        dropped = [(a, c) for a, c in zip(proposals, counts, strict=True) if used + c > budget]
        return fitting, dropped

    def _check_budget_allows_a_candidate(self, settings, state, train):
        if settings["budget"] is None or state["ensemble"] is not None:
            return
        fitting, dropped = self._candidates_within_budget(settings, [], 1, train)
        if not fitting:
            smallest = min(count for _, count in dropped)
            raise ValueError(
                f"`budget` is below the smallest first candidate ({smallest:,} "
                f"parameters with mixture weights: "
                f"{', '.join(f'{a} ({c:,})' for a, c in dropped)}). Received: "
                f"budget={self.budget!r}"
            )

    def _member_info(self, architectures, mixture, train, history):
        weights = mixture.member_weights()
        joined = [h["iteration"] for h in history if h["chosen"] is not None]
        return [
            {
                "iteration": joined[k],
                "architecture": str(a),
                "params": a.count_params(train.num_classes, image_shape=train.image_shape),
                "weight": np.asarray(weights[k]).tolist(),
            }
            for k, a in enumerate(architectures)
        ]

    def _set_fitted(self, ensemble, classes, member_info, history):
        self.ensemble_ = ensemble
        self.classes_ = np.asarray(classes)
        self.members_ = member_info
        self.history_ = history

    # === Prediction ===

    def predict_proba(self, data):
        """Class probabilities, columns in the order of `classes_`.

        Args:
            data: images, or anything `load_images` accepts (the `"test"` split
                for sources with splits). Labels in it are ignored.

        Returns:
            A float array `(N, len(classes_))`.
        """
        logits = self._logits(self._load(data))
        shifted = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, data):
        """Predicted labels, taken from `classes_`."""
        probabilities = self.predict_proba(data)
        return self.classes_[np.argmax(probabilities, axis=1)]

    def score(self, data, y=None, sample_weight=None):
        """Accuracy on labelled data (the `"test"` split for sources with splits).

        Args:
            data: images, or anything `load_images` accepts.
            y: labels when `data` is an array of images.
            sample_weight: None, or one non-negative weight per image; the
                accuracy is then their weighted mean.

        Returns:
            A float in [0, 1].
        """
        loaded = self._load(data, y, labels_required=True)
        weights = _check_sample_weight(sample_weight, len(loaded))
        predictions = np.argmax(self._logits(loaded), axis=1)
        return float(np.average(predictions == loaded.labels, weights=weights))

    def evaluate(self, data, y=None):
        """Returns `{"loss": cross-entropy, "accuracy": ...}` on labelled data."""
        loaded = self._load(data, y, labels_required=True)
        logits = self._logits(loaded)
        return {
            "loss": ensemble_crossentropy(logits, loaded.labels),
            "accuracy": float(np.mean(np.argmax(logits, axis=1) == loaded.labels)),
        }

    def recompute_batch_statistics(self, data, y=None, batch_size=256):
        """Recomputes every member's batch-normalization statistics on `data`.

        Each moving mean and variance becomes the mean of the member's batch
        statistics over the images, unaugmented and with drop path off,
        instead of the moving average of the last training batches (see
        `keras_adanas.nasnet.recompute_batch_statistics`). Nothing else
        changes, and nothing is written: `save` the classifier to keep it.
        After 4 epochs on `cifar10-dev` it lowered the test error of each of
        20 networks, by 0.15 to 5.3 points (2.4 on average), and of each
        ensemble by 1.5 to 4.0 points (`benchmarks/quality.py`).

        Args:
            data: the training images, or anything `load_images` accepts (its
                `"train"` split for sources with splits). Labels are not used.
            y: labels when `data` is an array of images (not used).
            batch_size: int, images per batch.

        Returns:
            self.

        Example:

        >>> clf.fit("cifar10-dev.npz").recompute_batch_statistics("cifar10-dev.npz")
        """
        loaded = self._load(data, y, split="train")
        for member in self.ensemble_.members:
            recompute_batch_statistics(member, loaded.images, batch_size=batch_size)
        return self

    def _load(self, data, y=None, labels_required=False, split="test"):
        self._check_fitted()
        loaded = load_images(
            *_as_pair(data, y),
            split=split,
            classes=list(self.classes_),
            with_labels=labels_required,
        )
        expected = tuple(self.ensemble_.input_shape[1:])
        if loaded.image_shape != expected:
            # A rank-3 array reads as a batch of grayscale images.
            one_image = tuple(getattr(data, "shape", ())) == expected
            hint = " (one image: pass a batch of one, `images[None]`)" if one_image else ""
            raise ValueError(
                f"Images must have shape {expected}, as in training. Received: "
                f"images of shape {loaded.image_shape}{hint}"
            )
        if labels_required and loaded.labels is None:
            raise ValueError("Scoring needs labels. Received: y=None")
        return loaded

    def _logits(self, loaded):
        logits = predict_images(self.ensemble_, loaded, PREDICT_BATCH_SIZE)
        return np.asarray(logits, dtype="float64")

    def _check_fitted(self):
        if not hasattr(self, "ensemble_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "This AdaNASClassifier is not fitted yet. Call `fit` first, or "
                "`AdaNASClassifier.load(path)`."
            )

    # === Persistence ===

    def save(self, path):
        """Saves the fitted classifier as one `.keras` file, atomically.

        Args:
            path: str, a path ending in `.keras`.
        """
        self._check_fitted()
        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"`path` must end in '.keras'. Received: path={path!r}")
        if os.path.isdir(path):
            raise ValueError(f"`path` is a folder, not a .keras file. Received: path={path!r}")
        self.ensemble_.metadata = self._metadata()
        save_model_atomically(self.ensemble_, path)

    @classmethod
    def load(cls, path):
        """Loads a classifier saved by `save`, or a project directory's ensemble.

        The loaded classifier predicts as the saved one, and with
        `warm_start=True` its `fit` grows the ensemble further.

        Args:
            path: a `.keras` file written by `save`, or a project directory.

        Returns:
            An `AdaNASClassifier`.
        """
        path = os.fspath(path)
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(
                f"{path!r} is a SavedModel (written by `export`), which serves with "
                "`tf.saved_model.load`: `load` reads a .keras file (`save`) or a "
                "project directory."
            )
        if os.path.isdir(path):
            path = os.path.join(path, ENSEMBLE_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No saved classifier at {path!r}.")
        try:
            ensemble = keras.saving.load_model(path)
        except Exception as error:  # Keras raises many types for a bad file.
            raise ValueError(
                f"{path!r} is not a readable .keras file: {type(error).__name__}: {error}"
            ) from None
        metadata = getattr(ensemble, "metadata", None)
        if not isinstance(ensemble, Ensemble) or not isinstance(metadata, dict):
            raise ValueError(
                f"{path!r} holds a Keras model but not a keras_adanas classifier. "
                f"Received: a {type(ensemble).__name__}"
            )
        _check_metadata(metadata, path, known=cls().get_params(deep=False))
        params = {k: v for k, v in metadata["params"].items() if k not in _RUNTIME_OPTIONS}
        if isinstance(params.get("generator"), dict):
            params["generator"] = keras.saving.deserialize_keras_object(params["generator"])
        classifier = cls(**params)
        classifier._set_fitted(ensemble, ensemble.classes, metadata["members"], metadata["history"])
        classifier.stop_reason_ = metadata.get("stop_reason")
        return classifier

    def export(self, path):
        """Writes a TensorFlow SavedModel serving class probabilities.

        Its `serve` endpoint takes uint8 images `(N, H, W, C)`, `serve_float`
        float32 images in [0, 255]; both return probabilities in the order of
        `classes_`. It loads with `tf.saved_model.load` without keras_adanas.

        Args:
            path: str or `os.PathLike`, the SavedModel folder: a new one, an
                empty one, or an earlier SavedModel's, which is replaced. A
                file or a folder holding anything else is refused with a
                `ValueError` before anything is written.
        """
        self._check_fitted()
        from keras_adanas.serving import export_saved_model

        export_saved_model(self.ensemble_, path)

    def _params_record(self):
        """The arguments as JSON: generator objects serialized, N@F normalized."""
        params = self.get_params(deep=False)
        generator = params["generator"]
        if not isinstance(generator, str):
            params["generator"] = (
                keras.saving.serialize_keras_object(generator)
                if hasattr(generator, "get_config")
                else None
            )
        if not isinstance(params["strategy"], str):
            params["strategy"] = type(params["strategy"]).__name__
        if isinstance(params["dtype_policy"], keras.DTypePolicy):
            params["dtype_policy"] = params["dtype_policy"].name
        params["architecture"] = str(Architecture.parse(params["architecture"]))
        if params["directory"] is not None:
            params["directory"] = os.fspath(params["directory"])
        # NumPy scalars (a grid of `GridSearchCV` built from arrays) as the
        # Python numbers they stand for.
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
        return json.loads(json.dumps(params))

    def _metadata(self):
        return {
            "format": "keras_adanas.AdaNASClassifier/1",
            "params": self._params_record(),
            "members": self.members_,
            "history": self.history_,
            "stop_reason": getattr(self, "stop_reason_", None),
        }

    def _resumable_state(self, project):
        """The ensemble to grow: this one with `warm_start`, else the directory's.

        Refuses a directory that holds a search with other arguments, unless
        `overwrite=True`. Writes nothing.
        """
        if self._grows_itself():
            return self._state_of(self)
        if project is None or self.overwrite:
            return None
        record = project.recorded_search()
        saved = type(self).load(project.ensemble_path) if project.has_ensemble() else None
        if record is None and saved is None:
            return None
        theirs = record["params"] if record else saved._params_record()
        mine = self._params_record()
        # An argument newer than the record had its default value there.
        theirs = {**type(self)()._params_record(), **theirs}
        differ = [k for k in mine if k not in _RESUMABLE and mine[k] != theirs.get(k)]
        if differ:
            raise ValueError(
                f"The directory {project.path!r} holds a search run with other "
                "arguments: "
                + ", ".join(f"{k}={theirs.get(k)!r} there, {mine[k]!r} here" for k in differ)
                + ". Use the same arguments to resume, another directory, or "
                "`overwrite=True` to start anew there."
            )
        if saved is None:
            return None
        self._log(f"Resuming the search in {project.path!r} after iteration {len(saved.history_)}.")
        return self._state_of(saved)

    def _check_same_data(self, project, fingerprint):
        """Refuses to resume a directory's search on other data."""
        if project is None or self.overwrite or self._grows_itself():
            return
        record = project.recorded_search()
        if record is None or record["data"] == fingerprint:
            return
        differ = []
        for part in ("train", "selection"):
            there, here = record["data"].get(part), fingerprint[part]
            if there == here:
                continue
            if there is None or here is None:
                differ.append(f"{part} data given {'here' if here else 'there'} only")
                continue
            differ += [
                f"{part} {key}: {there.get(key)!r} there, {here[key]!r} here"
                if key != "sha256"
                else f"other {part} images or labels"
                for key in here
                if there.get(key) != here[key]
            ]
        raise ValueError(
            f"The directory {project.path!r} holds a search on other data ("
            + "; ".join(differ)
            + "). Fit on the same data to resume, use another directory, or pass "
            "`overwrite=True` to start anew there."
        )

    def _grows_itself(self):
        """Whether `fit` grows this fitted classifier's ensemble (`warm_start`)."""
        return bool(self.warm_start) and hasattr(self, "ensemble_")

    @staticmethod
    def _state_of(classifier):
        return {
            "ensemble": classifier.ensemble_,
            "classes": list(classifier.classes_),
            "history": classifier.history_,
            "member_info": classifier.members_,
        }

    def _log(self, message):
        if self.verbose:
            print(message, flush=True)


def _iteration_report(iteration, result):
    """The JSON record of an iteration; `chosen` is None when it was skipped."""
    chosen = result.chosen
    return {
        "iteration": iteration,
        "candidates": result.candidates,
        "chosen": chosen,
        "architecture": None if chosen is None else result.candidates[chosen]["architecture"],
        "mixture_weights": None
        if chosen is None
        else np.asarray(result.mixture.member_weights()).tolist(),
        "steps": result.steps,
        "batch_size": result.batch_size,
        "resumed_after_epoch": result.initial_epoch,
        "seconds": result.seconds,
        "images_per_second": result.images_per_second,
    }


def _iteration_summary(report, member_info, mixture):
    """The log line after an iteration."""
    served = sum(m["params"] for m in member_info) + mixture.num_params
    speed = report["images_per_second"]
    return (
        f"Iteration {report['iteration']}: chose {report['architecture']} "
        f"({member_info[-1]['params']:,} parameters); ensemble of {len(member_info)} has "
        f"{served:,} parameters; {report['seconds']:.0f}s"
        + ("" if speed is None else f", {speed:.0f} images/s")
    )


def _check_metadata(metadata, path, known):
    """Refuses the metadata of a damaged or foreign saved classifier."""
    fields = {"params": dict, "members": list, "history": list}
    damaged = [k for k, kind in fields.items() if not isinstance(metadata.get(k), kind)]
    if damaged:
        raise ValueError(
            f"{path!r} holds an ensemble whose keras_adanas metadata is damaged: "
            f"{', '.join(damaged)} missing or of the wrong type."
        )
    unknown = sorted(set(metadata["params"]) - set(known))
    if unknown:
        raise ValueError(
            f"{path!r} was saved with arguments this version of AdaNASClassifier "
            f"does not know: {unknown}."
        )


def _validated_callbacks(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, keras.callbacks.Callback) for c in callbacks
    ):
        raise TypeError(
            "`callbacks` must be a list of keras.callbacks.Callback. Received: "
            f"callbacks={callbacks!r}"
        )
    return list(callbacks)


def _as_pair(data, y=None):
    if y is None and isinstance(data, tuple) and len(data) == 2:
        return data
    return data, y


def _validation_pair(validation_data):
    """`validation_data` as the `(source, y)` arguments of `load_images`."""
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3:
        raise ValueError(
            "`validation_data` must be `(images, labels)` or a data source; sample "
            "weights are not supported. Received: a "
            f"{type(validation_data).__name__} of 3 items"
        )
    if isinstance(validation_data, list) and len(validation_data) == 2:
        return validation_data[0], validation_data[1]
    return _as_pair(validation_data)


def _check_int(name, value, minimum, maximum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}. Received: {name}={value!r}")


def _check_sample_weight(sample_weight, num_images):
    """`sample_weight` as a float array `(num_images,)`, or None."""
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype="float64")
    except (TypeError, ValueError):
        raise TypeError(
            "`sample_weight` must be numbers, one per image. Received: "
            f"sample_weight of type {type(sample_weight).__name__}"
        ) from None
    if weights.shape not in ((num_images,), (num_images, 1)):
        raise ValueError(
            f"`sample_weight` must hold one weight per image, shape ({num_images},). "
            f"Received: sample_weight.shape={weights.shape}"
        )
    weights = weights.reshape(num_images)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(
            "`sample_weight` must be finite and non-negative, and not all zero. "
            f"Received: values in [{weights.min()}, {weights.max()}], sum {weights.sum()}"
        )
    return weights
