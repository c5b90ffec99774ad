"""`Search`: the AdaNAS loop, one iteration at a time.

Each iteration runs `on_iteration_begin` (the generator proposes, the budget
filters), `train` (the candidates together, retried with half the batch when
out of memory), `select` (the candidate whose ensemble has the lowest
selection loss) and `on_iteration_end` (the member joins, the records and
the project directory are written), as KerasTuner's loop runs its trials.
With a `time_limit`, a `TimePlanner` plans each iteration's length and the
number of iterations (`keras_adanas.search.planner`).
"""

import functools
import math
import warnings

import keras
import numpy as np

from keras_adanas.architecture import Architecture
from keras_adanas.distribute import num_replicas, strategy_scope
from keras_adanas.ensemble import Ensemble
from keras_adanas.search.budget import propose_within_budget
from keras_adanas.search.candidates import build_candidates
from keras_adanas.search.iteration import train_candidates
from keras_adanas.search.memory import retry_out_of_memory
from keras_adanas.search.planner import TimePlanner
from keras_adanas.search.selection import select
from keras_adanas.search.state import IterationRecord, IterationStatus, member_records


class Search:
    """Grows `state`'s ensemble until `max_iterations` or the budget stops it.

    Args:
        config: a `SearchConfig`.
        train: `LabeledImages` to train on.
        selection: `LabeledImages` to select on.
        state: the `SearchState` to grow (empty, resumed or warm-started).
        strategy: a `tf.distribute.Strategy`, or None.
        project: a locked `ProjectDirectory`, or None.
        callbacks: list of Keras callbacks for each iteration's training.
        publish: called with the state after each iteration; returns the
            metadata saved with the ensemble (`Ensemble.metadata`).
        log: called with each line to print.
        spent_seconds: float, what earlier runs of a resumed search spent of
            its `time_limit`.

    Example:

    >>> state = Search(config, train, train, SearchState(), publish=lambda s: {}).run()
    >>> state.stop_reason
    'reached max_iterations=10'
    """

    def __init__(
        self,
        config,
        train,
        selection,
        state,
        strategy=None,
        project=None,
        callbacks=(),
        publish=lambda state: None,
        log=lambda line: None,
        spent_seconds=0.0,
    ):
        self.config = config
        self.train_data = train
        self.selection_data = selection
        self.state = state
        self.strategy = strategy
        self.project = project
        self.callbacks = list(callbacks)
        self.publish = publish
        self.log = log
        self.planner = None
        if config.time_limit is not None:
            self.planner = TimePlanner(
                config.time_limit,
                spent_seconds=spent_seconds,
                max_iterations=config.max_iterations - state.next_iteration + 1,
                iterations_before=state.next_iteration - 1,
            )
        self._training_ended = None

    def run(self):
        """Runs the iterations left; returns the `SearchState`."""
        self.state.stop_reason = f"reached max_iterations={self.config.max_iterations}"
        for iteration in range(self.state.next_iteration, self.config.max_iterations + 1):
            if self.planner is not None and not self.planner.can_start_iteration():
                self.state.stop_reason = self._out_of_time()
                self.log(f"Stopping: {self.state.stop_reason}.")
                break
            architectures = self.on_iteration_begin(iteration)
            if architectures is None:
                break
            if self.planner is not None:
                self.planner.begin_iteration()
            result = retry_out_of_memory(
                functools.partial(self._train_and_select, iteration, architectures),
                iteration,
                self.config.iteration,
                num_replicas(self.strategy),
            )
            self.on_iteration_end(iteration, result)
            if self.planner is not None:
                self.planner.end_iteration(self._training_ended)
        return self.state

    def _out_of_time(self):
        planner = self.planner
        limit = f"time_limit={planner.limit_seconds:g}s"
        if planner.iterations_done >= (planner.planned_iterations or math.inf):
            planned = planner.iterations_before + planner.planned_iterations
            return f"ran the {planned} iterations planned for {limit}"
        return f"too little of {limit} left for another iteration"

    def _train_and_select(self, iteration, architectures, iteration_config):
        trained = self.train(iteration, architectures, iteration_config)
        self._training_ended = None if self.planner is None else self.planner.clock()
        return self.select(iteration, trained)

    def on_iteration_begin(self, iteration):
        """The architectures to train, or None (and the stop reason set)
        when none fits the budget."""
        proposal = propose_within_budget(
            self.config.generator,
            self.state.architectures,
            iteration,
            self.config.budget,
            self.config.iteration.mixture_kind,
            (self.train_data.num_classes, self.train_data.image_shape),
        )
        if not proposal.fitting:
            self.state.stop_reason = (
                f"no candidate fits the budget of {self.config.budget:,} parameters "
                f"at iteration {iteration} (proposed: "
                f"{', '.join(f'{a} ({p:,})' for a, p in proposal.over_budget)})"
            )
            self.log(f"Stopping: {self.state.stop_reason}.")
            return None
        dropped = [str(a) for a, _ in proposal.over_budget]
        self.log(
            f"Iteration {iteration}/{self.config.max_iterations}: training "
            f"{', '.join(str(a) for a in proposal.fitting)}"
            + (f" (over budget: {', '.join(dropped)})" if dropped else "")
        )
        return proposal.fitting

    def train(self, iteration, architectures, iteration_config):
        """New candidates of `architectures`, trained together (a `TrainedIteration`)."""
        callbacks = list(self.callbacks)
        if self.config.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(self.project.tensorboard_dir(iteration)))
        with strategy_scope(self.strategy):
            candidates = build_candidates(
                architectures,
                self.train_data.num_classes,
                self.train_data.image_shape,
                iteration,
                iteration_config.seed,
                dtype=self.config.dtype_policy,
                drop_path_keep_prob=iteration_config.recipe.drop_path_keep_prob,
                weight_decay=iteration_config.recipe.weight_decay,
                auxiliary_head=iteration_config.recipe.auxiliary_weight > 0,
            )
            return train_candidates(
                iteration,
                candidates,
                self.train_data,
                iteration_config,
                members=self.state.members,
                previous_mixture=self.state.mixture,
                callbacks=callbacks,
                verbose=self.config.verbose,
                backup_dir=None if self.project is None else self.project.backup_dir,
                planner=self.planner,
                selection_steps=math.ceil(len(self.selection_data) / iteration_config.batch_size),
            )

    def select(self, iteration, trained):
        """The `IterationResult` of the selection, under the strategy."""
        with strategy_scope(self.strategy):
            return select(iteration, trained, self.selection_data)

    def on_iteration_end(self, iteration, result):
        """Records the iteration; the chosen candidate joins the ensemble."""
        state = self.state
        record = IterationRecord(
            iteration=iteration,
            status=IterationStatus.ALL_DIVERGED
            if result.chosen is None
            else IterationStatus.CHOSEN,
            candidates=tuple(result.candidates),
            chosen=result.chosen,
            mixture_weights=None
            if result.chosen is None
            else np.asarray(result.mixture.member_weights()).tolist(),
            steps=result.steps,
            batch_size=result.batch_size,
            resumed_after_epoch=result.initial_epoch,
            seconds=result.seconds,
            images_per_second=result.images_per_second,
            plan=None if result.plan is None else result.plan.to_json(),
        )
        state.history.append(record)
        if result.chosen is None:
            warnings.warn(
                f"Every candidate of iteration {iteration} diverged; the iteration "
                "is skipped and the ensemble so far is kept.",
                stacklevel=4,
            )
            metadata = self.publish(state)
            if state.ensemble is not None:
                state.ensemble.metadata = metadata
            if self.project is not None:
                self.project.write_iteration(record.to_json(), state.ensemble)
            return
        data = self.train_data
        state.members.append(result.member)
        state.mixture = result.mixture
        state.ensemble = Ensemble(
            state.members, state.mixture, classes=data.classes, class_names=data.class_names
        )
        architectures = [*state.architectures, Architecture.parse(record.architecture)]
        state.member_records = member_records(
            architectures, state.mixture, state.history, data.num_classes, data.image_shape
        )
        state.ensemble.metadata = self.publish(state)
        if self.project is not None:
            self.project.write_iteration(record.to_json(), state.ensemble, member=result.member)
        self.log(_summary(record, state))


def _summary(record, state):
    """The log line after an iteration."""
    served = sum(m.params for m in state.member_records) + state.mixture.num_params
    speed = record.images_per_second
    return (
        f"Iteration {record.iteration}: chose {record.architecture} "
        f"({state.member_records[-1].params:,} parameters); ensemble of "
        f"{len(state.member_records)} has {served:,} parameters; {record.seconds:.0f}s"
        + ("" if speed is None else f", {speed:.0f} images/s")
    )
