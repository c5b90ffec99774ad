"""A search planned to a wall-clock limit: the limit's forms, the planner's
arithmetic on a fake clock, the schedule whose length is set mid-training,
and a time-limited search end to end."""

import json
import math
import shutil
import types

import keras
import numpy as np
import pytest

from keras_adanas import AdaNASClassifier
from keras_adanas.backup import IterationBackup
from keras_adanas.io_utils import read_json, write_json_atomically
from keras_adanas.search.calibration import (
    REPLANS_PER_ITERATION,
    Deadline,
    TimedProgress,
    train_to_plan,
)
from keras_adanas.search.planner import (
    CALIBRATION_STEPS,
    MIN_EPOCHS_PER_MEMBER,
    SAFETY_FRACTION,
    SELECTION_COMPILE_COST,
    SELECTION_COST,
    IterationPlan,
    TimePlanner,
    parse_time_limit,
)
from keras_adanas.search.schedule import PlannedCosineDecay


@pytest.mark.parametrize(
    "limit, seconds",
    [
        (600, 600.0),
        (90.5, 90.5),
        (np.int64(30), 30.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        (" 45 ", 45.0),
        ("10M", 600.0),
    ],
)
def test_time_limits_in_seconds_or_with_a_unit(limit, seconds):
    assert parse_time_limit(limit) == seconds


@pytest.mark.parametrize(
    "limit, error",
    [
        ("10 minutes", ValueError),
        ("10d", ValueError),
        ("", ValueError),
        (0, ValueError),
        (-5, ValueError),
        (math.inf, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ([600], TypeError),
    ],
)
def test_bad_time_limits_are_refused_naming_the_argument(limit, error):
    with pytest.raises(error, match="time_limit"):
        parse_time_limit(limit)


def test_a_bad_time_limit_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match="time_limit='ten minutes'"):
        AdaNASClassifier(time_limit="ten minutes", directory=tmp_path / "p").fit(
            np.zeros((8, 8, 8, 3), "uint8"), np.arange(8) % 2
        )
    assert not (tmp_path / "p").exists()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def planned_after_ten_seconds(limit, max_iterations=10, **measured):
    """A planner of `limit` on a fake clock, and the plan of its first
    iteration once 10 s of compiling and calibrating have passed (step
    0.1 s, 100 steps an epoch, 20 selection batches, unless `measured`
    says otherwise)."""
    clock = FakeClock()
    planner = TimePlanner(limit, max_iterations=max_iterations, clock=clock)
    planner.begin_iteration()
    clock.now += 10
    arguments = {"seconds_per_step": 0.1, "steps_per_epoch": 100, "selection_steps": 20}
    return clock, planner, planner.plan(**{**arguments, **measured})


def test_the_first_iteration_plans_how_many_members_the_limit_affords():
    clock = FakeClock()
    planner = TimePlanner(600, max_iterations=10, clock=clock)
    assert planner.can_start_iteration()
    planner.begin_iteration()
    clock.now += 10  # compiling and calibrating
    plan = planner.plan(seconds_per_step=0.1, steps_per_epoch=25, selection_steps=20)
    reserve = SELECTION_COST * 0.1 * 20
    left = SAFETY_FRACTION * 600 - 10
    member = MIN_EPOCHS_PER_MEMBER * 25 * 0.1 + reserve + 10
    assert plan.planned_iterations == int((left + 10) // member) == 5
    assert plan.seconds == pytest.approx((left + 10) / 5)
    assert plan.reserved_seconds == pytest.approx(reserve)
    assert plan.steps == CALIBRATION_STEPS + 1054  # (116.4 - 10 - 1.0) / 0.1
    assert planner.training_deadline(plan) == pytest.approx(1000 + plan.seconds - reserve)


def test_max_iterations_caps_the_plan_and_each_member_gets_more_time():
    clock = FakeClock()
    planner = TimePlanner(600, max_iterations=2, clock=clock)
    planner.begin_iteration()
    clock.now += 10
    plan = planner.plan(seconds_per_step=0.1, steps_per_epoch=25, selection_steps=20)
    assert plan.planned_iterations == 2
    assert plan.seconds == pytest.approx(SAFETY_FRACTION * 600 / 2)


def test_a_short_limit_plans_one_member_of_every_step_it_affords():
    _, _, plan = planned_after_ten_seconds(60)
    assert plan.planned_iterations == 1
    assert SAFETY_FRACTION * 60 == pytest.approx(58.2)
    assert plan.steps == CALIBRATION_STEPS + 472  # (58.2 - 10 - 1.0) / 0.1


def test_a_limit_spent_in_the_calibration_trains_no_further_step():
    _, _, plan = planned_after_ten_seconds(5)
    assert (plan.steps, plan.planned_iterations) == (CALIBRATION_STEPS, 1)


def test_the_first_selection_is_expected_to_compile_too():
    _, _, plan = planned_after_ten_seconds(60, compile_seconds=8)
    reserve = SELECTION_COST * 0.1 * 20 + SELECTION_COMPILE_COST * 8
    assert plan.reserved_seconds == pytest.approx(reserve) == pytest.approx(5.0)
    assert plan.steps == CALIBRATION_STEPS + 432  # (58.2 - 10 - 5.0) / 0.1


def test_a_replan_fills_the_time_left_at_the_step_time_measured_since():
    clock, planner, plan = planned_after_ten_seconds(60)
    assert plan.steps == CALIBRATION_STEPS + 472
    clock.now += 8  # the first epoch, 100 steps at 0.08 s: faster than timed
    faster = planner.replan(plan, CALIBRATION_STEPS + 100, seconds_per_step=0.08)
    # (58.2 - 1.0 reserved) - 18 s spent = 39.2 s left: 490 steps of 0.08 s.
    assert faster.steps == CALIBRATION_STEPS + 100 + 490
    assert faster.replanned_seconds_per_step == 0.08
    assert (faster.seconds, faster.reserved_seconds) == (plan.seconds, plan.reserved_seconds)
    slower = planner.replan(plan, CALIBRATION_STEPS + 100, seconds_per_step=0.2)
    assert slower.steps == CALIBRATION_STEPS + 100 + 196
    clock.now += 100  # past the deadline: no step more
    assert planner.replan(plan, 50, seconds_per_step=0.1).steps == 50


def test_the_first_epochs_measured_slower_plan_fewer_longer_members():
    """Timed at 0.1 s a step, the first iteration planned 5 members of 116 s;
    its first epochs ran at 0.25 s a step. Its first replan plans the 2
    members of `MIN_EPOCHS_PER_MEMBER` epochs that 0.25 s a step affords, and
    the iteration takes half of the limit; later replans leave the number
    alone."""
    clock, planner, plan = planned_after_ten_seconds(600, steps_per_epoch=25)
    assert plan.planned_iterations == 5
    clock.now += 25  # the first epochs: 100 steps at 0.25 s
    replanned = planner.replan(plan, CALIBRATION_STEPS + 100, seconds_per_step=0.25)
    member = MIN_EPOCHS_PER_MEMBER * 25 * 0.25 + plan.reserved_seconds + 10
    assert int(SAFETY_FRACTION * 600 // member) == 2
    assert replanned.planned_iterations == planner.planned_iterations == 2
    assert replanned.seconds == pytest.approx(SAFETY_FRACTION * 600 / 2)
    # (291 - 1.0 reserved - 35 spent) / 0.25 = 1020 steps more.
    assert replanned.steps == CALIBRATION_STEPS + 100 + 1020
    clock.now += 50
    again = planner.replan(replanned, CALIBRATION_STEPS + 300, seconds_per_step=0.5)
    assert again.planned_iterations == 2 and again.seconds == replanned.seconds


def test_the_first_epochs_measured_faster_plan_more_members():
    clock, planner, plan = planned_after_ten_seconds(200, steps_per_epoch=25)
    assert plan.planned_iterations == 1  # 194 s: one member of 40 epochs at 0.1 s
    clock.now += 5  # the first epochs: 100 steps at 0.05 s
    replanned = planner.replan(plan, CALIBRATION_STEPS + 100, seconds_per_step=0.05)
    assert replanned.planned_iterations == 3  # 194 // (50 + 1 + 10)
    assert replanned.seconds == pytest.approx(SAFETY_FRACTION * 200 / 3)
    assert replanned.steps == CALIBRATION_STEPS + 100 + int((194 / 3 - 1 - 15) / 0.05)
    # max_iterations caps the new number as it capped the first.
    clock, planner, plan = planned_after_ten_seconds(200, max_iterations=2, steps_per_epoch=25)
    clock.now += 5
    assert planner.replan(plan, 108, seconds_per_step=0.05).planned_iterations == 2


def test_a_recount_that_would_end_the_iteration_at_once_is_not_taken():
    clock, planner, plan = planned_after_ten_seconds(200)
    clock.now += 100  # 1,000 steps at 0.1 s, then the step sped up tenfold
    replanned = planner.replan(plan, CALIBRATION_STEPS + 1000, seconds_per_step=0.01)
    assert (replanned.planned_iterations, replanned.seconds) == (1, plan.seconds)
    assert planner.planned_iterations == 1


class FakeTraining:
    """Stands for `fit`: trains `steps_per_epoch` steps an epoch of
    `seconds_per_step` each on `clock`, with Keras' stopping rules, calling
    the callbacks it is given and the `Deadline`."""

    def __init__(self, clock, deadline, seconds_per_step):
        self.clock = clock
        self.deadline = deadline
        # A float, or a callable of the steps trained so far.
        self.seconds_per_step = seconds_per_step
        self.steps = 0
        self.calls = []
        self.steps_per_call = []

    def step_seconds(self):
        if callable(self.seconds_per_step):
            return self.seconds_per_step(self.steps)
        return self.seconds_per_step

    def __call__(self, epochs, steps_per_epoch, initial_epoch, more_callbacks):
        steps_before = self.steps
        history = self.train(epochs, steps_per_epoch, initial_epoch, more_callbacks)
        self.steps_per_call.append(self.steps - steps_before)
        return history

    def train(self, epochs, steps_per_epoch, initial_epoch, more_callbacks):
        model = types.SimpleNamespace(stop_training=False)
        callbacks = [self.deadline, *more_callbacks]
        for callback in callbacks:
            callback.set_model(model)
        self.calls.append((initial_epoch, epochs))
        for epoch in range(initial_epoch, epochs):
            for batch in range(steps_per_epoch):
                self.clock.now += self.step_seconds()
                self.steps += 1
                for callback in callbacks:
                    callback.on_train_batch_end(batch)
                if model.stop_training:
                    return "history"
            for callback in callbacks:
                callback.on_epoch_end(epoch)
            if model.stop_training:
                return "history"
        return "history"


def train_fake_to_plan(limit, seconds_per_step, max_iterations=1):
    """Plans a first iteration of `limit` seconds on a fake clock (step timed
    at 0.1 s, 50 steps an epoch) and trains it with `FakeTraining` at
    `seconds_per_step`. Returns `(planner, plan, final plan, training,
    steps trained, schedule lengths set)`."""
    clock, planner, plan = planned_after_ten_seconds(
        limit, max_iterations=max_iterations, steps_per_epoch=50
    )
    deadline = Deadline(planner.training_deadline(plan), clock)
    training = FakeTraining(clock, deadline, seconds_per_step)
    lengths = []
    _, final = train_to_plan(
        training,
        plan,
        planner,
        deadline,
        steps_per_pass=50,
        on_plan=lambda plan, done: lengths.append((plan.steps, done)),
    )
    trained = CALIBRATION_STEPS + deadline.steps_trained
    return planner, plan, final, training, trained, lengths


@pytest.mark.parametrize("seconds_per_step", [0.08, 0.1, 0.125])
def test_training_to_plan_ends_on_time_with_its_schedule_complete(seconds_per_step):
    """The calibration timed 0.1 s a step; the steps take `seconds_per_step`.
    Replanned on the way, training ends within a step of its deadline, and
    the schedules' last length is the steps trained."""
    planner, plan, final, training, trained, lengths = train_fake_to_plan(60, seconds_per_step)
    assert plan.steps == CALIBRATION_STEPS + 472
    assert final.steps == trained == lengths[-1][0]
    assert planner.training_deadline(plan) - training.clock.now < seconds_per_step + 1e-9
    assert trained == CALIBRATION_STEPS + int((57.2 - 10) / seconds_per_step + 1e-6)
    # Whole epochs between plans, at least 100 steps: two epochs of 50 a call.
    starts = [initial_epoch for initial_epoch, _ in training.calls]
    assert starts == list(range(0, 2 * len(starts), 2))


def test_training_to_plan_follows_a_step_that_speeds_up_on_the_way():
    """The calibration timed 0.1 s a step; the first 1,000 steps take 0.125 s,
    the rest 0.08 s (a host whose load changed). Each plan uses the step
    time of the call before it, and the calls shorten towards the end, so
    the iteration still trains until its deadline, not to a plan made from
    the slow steps, and its schedules end with it."""
    planner, plan, final, training, trained, lengths = train_fake_to_plan(
        300, lambda steps: 0.125 if steps < 1000 else 0.08
    )
    assert final.steps == trained == lengths[-1][0]
    assert 0 <= planner.training_deadline(plan) - training.clock.now < 0.08 + 1e-9
    # Whole epochs of 50 steps: an eighth of the plan a call, then half of
    # what is left, down to 100 steps.
    assert training.steps_per_call[0] == 50 * math.ceil(plan.steps / 8 / 50)
    assert training.steps_per_call[-1] <= 100


def test_training_to_a_recounted_plan_runs_to_its_new_deadline():
    """Timed at 0.1 s a step, the first iteration planned 5 members; its
    steps take 0.25 s, so its first replan plans 2 and doubles its share
    and more. Training goes on to the new deadline in calls of whole epochs
    (not a step a call against the old deadline) and ends with its
    schedules complete."""
    planner, plan, final, training, trained, lengths = train_fake_to_plan(
        1200, 0.25, max_iterations=10
    )
    assert plan.planned_iterations == 5
    deadline, clock = training.deadline, training.clock
    assert final.planned_iterations == 2
    assert deadline.deadline == planner.training_deadline(final) > planner.training_deadline(plan)
    assert 0 <= deadline.deadline - clock.now < 0.25 + 1e-9
    assert final.steps == trained == lengths[-1][0]
    assert min(training.steps_per_call[:-1]) >= 100
    assert len(training.calls) <= 2 * REPLANS_PER_ITERATION


def test_later_iterations_share_what_is_left_and_reserve_the_measured_overhead():
    clock = FakeClock()
    planner = TimePlanner(600, max_iterations=3, clock=clock)
    planner.begin_iteration()
    clock.now += 10
    first = planner.plan(seconds_per_step=0.1, steps_per_epoch=25, selection_steps=20)
    clock.now = 1000 + first.seconds - first.reserved_seconds  # training ends on time
    training_ended = clock.now
    clock.now += 4  # selecting and writing took 4 s
    planner.end_iteration(training_ended)
    assert planner.can_start_iteration()
    planner.begin_iteration()
    clock.now += 12
    second = planner.plan(seconds_per_step=0.2, steps_per_epoch=25, selection_steps=20)
    left = 1000 + SAFETY_FRACTION * 600 - clock.now
    assert second.reserved_seconds == pytest.approx(4)
    assert second.seconds == pytest.approx((left + 12) / 2)
    assert second.steps == CALIBRATION_STEPS + int((second.seconds - 12 - 4) / 0.2)
    assert second.planned_iterations == first.planned_iterations == 3


def test_no_iteration_starts_past_the_plan_or_without_time_for_its_overhead():
    clock = FakeClock()
    planner = TimePlanner(100, max_iterations=5, clock=clock)
    planner.begin_iteration()
    clock.now += 30
    plan = planner.plan(seconds_per_step=0.05, steps_per_epoch=5, selection_steps=5)
    assert plan.planned_iterations == 2
    clock.now = 1000 + 90
    planner.end_iteration(clock.now - 1)
    # 7 s left, but the first spent 30 s compiling and timing.
    assert not planner.can_start_iteration()
    planner.planned_iterations = planner.iterations_done
    clock.now = 1000
    assert not planner.can_start_iteration()


def test_a_resumed_search_counts_what_its_earlier_runs_spent():
    clock = FakeClock()
    planner = TimePlanner(
        600, spent_seconds=500, max_iterations=8, iterations_before=2, clock=clock
    )
    assert planner.remaining() == pytest.approx(SAFETY_FRACTION * 600 - 500)
    planner.begin_iteration()
    clock.now += 5
    plan = planner.plan(seconds_per_step=0.05, steps_per_epoch=5, selection_steps=5)
    member = MIN_EPOCHS_PER_MEMBER * 5 * 0.05 + 0.125 + 5  # epochs, reserve, overhead
    assert plan.planned_iterations == 2 + int((82 + 5) // member) == 7
    over = TimePlanner(600, spent_seconds=700, max_iterations=8, iterations_before=2, clock=clock)
    assert not over.can_start_iteration()
    # With nothing finished before, the first iteration runs whatever is left.
    first = TimePlanner(600, spent_seconds=700, max_iterations=8, clock=clock)
    assert first.can_start_iteration()


def test_an_iteration_resumed_from_its_backup_keeps_its_share_and_its_count():
    """Planned at 10 s (0.1 s a step, three iterations of 194 s), backed up
    after 100 s and 908 steps, the iteration resumes in a new process: its
    100 s count against the limit, its share and its count of iterations
    stand, and its steps are those done plus what its share leaves after the
    3 s the new process took to restore it."""
    clock, planner, first = planned_after_ten_seconds(600, max_iterations=3, steps_per_epoch=25)
    assert first.planned_iterations == 3 and first.overhead_seconds == 10
    assert first.seconds == pytest.approx(SAFETY_FRACTION * 600 / 3)
    reserve = first.reserved_seconds

    clock = FakeClock()  # the new process's clock
    resumed = TimePlanner(600, max_iterations=3, clock=clock)
    resumed.begin_iteration()
    clock.now += 3
    resumed.resume_iteration(seconds=100, planned_iterations=first.planned_iterations)
    assert resumed.remaining() == pytest.approx(SAFETY_FRACTION * 600 - 100 - 3)
    plan = resumed.plan(
        seconds_per_step=0.1,
        steps_per_epoch=25,
        selection_steps=20,
        steps_done=908,
        overhead_seconds=first.overhead_seconds,
    )
    assert plan.seconds == pytest.approx(first.seconds)
    assert plan.planned_iterations == 3
    assert plan.steps == 908 + int((first.seconds - 103 - reserve) / 0.1 + 1e-6)
    assert plan.steps == first.steps - 30
    assert resumed.training_deadline(plan) == pytest.approx(
        clock.now + first.seconds - 103 - reserve
    )
    # What a later iteration must find left: the overhead, not the 103 s.
    assert resumed.fixed_seconds == pytest.approx(10 + reserve)
    # Its first epochs were measured before: a slower step keeps the count.
    clock.now += 30
    slower = resumed.replan(plan, 1208, seconds_per_step=0.3)
    assert (slower.planned_iterations, slower.seconds) == (3, plan.seconds)


def test_a_time_limited_backup_is_read_only_with_its_progress(tmp_path):
    """`TimedProgress` survives its JSON; a time-limited iteration ignores
    a backup whose progress record is missing or wrong."""
    plan = IterationPlan(
        seconds=194.0,
        seconds_per_step=0.1,
        reserved_seconds=1.0,
        steps=1838,
        planned_iterations=3,
        replanned_seconds_per_step=0.12,
        overhead_seconds=10.0,
    )
    progress = TimedProgress(steps=908, seconds=100.0, compile_seconds=4.0, plan=plan)
    assert TimedProgress.from_json(json.loads(json.dumps(progress.to_json()))) == progress
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    folder = tmp_path / "backup"
    writer = IterationBackup(folder, {"iteration": 1}, progress=lambda: progress)
    model.fit(x, y, epochs=1, callbacks=[writer], verbose=0)
    reader = IterationBackup(folder, {"iteration": 1}, progress_type=TimedProgress)
    assert reader.read() is not None
    assert reader.restore(model) == 1 and reader.restored_progress == progress
    record = read_json(folder / "backup.json")
    unknown = {**record["progress"], "plan": {**record["progress"]["plan"], "epochs": 3}}
    for wrong in (None, {**record["progress"], "steps": -1}, {"steps": 908}, unknown):
        if wrong is None:
            del record["progress"]
        else:
            record["progress"] = wrong
        write_json_atomically(record, folder / "backup.json")
        assert reader.read() is None


def expected_cosine(step, total, rate=0.1, warmup=0.0):
    warm = math.floor(warmup * total)
    if step < warm:
        return rate * step / warm
    return 0.5 * rate * (1 + math.cos(math.pi * min((step - warm) / (total - warm), 1.0)))


@pytest.mark.parametrize("warmup", [0.0, 0.1])
def test_the_planned_schedule_is_keras_cosine_decay(warmup):
    schedule = PlannedCosineDecay(0.1, total_steps=100, warmup=warmup)
    if warmup:
        reference = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=90, warmup_target=0.1, warmup_steps=10
        )
    else:
        reference = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=100)
    for step in (0, 1, 5, 10, 37, 99, 100, 150):
        assert float(schedule(step)) == pytest.approx(float(reference(step)), abs=1e-6)
        assert float(schedule(step)) == pytest.approx(
            expected_cosine(step, 100, 0.1, warmup), abs=1e-7
        )


def test_a_length_set_between_fits_drives_the_compiled_step():
    """Plain SGD on `loss = w` moves `w` by the learning rate of each step:
    the third step's must be that of the length set after two."""
    schedule = PlannedCosineDecay(0.1, total_steps=100)
    inputs = keras.Input((1,))
    model = keras.Model(
        inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inputs)
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    model.compile(optimizer=optimizer, loss=lambda y_true, y_pred: keras.ops.mean(y_pred))
    optimizer.build(model.trainable_variables)
    schedule.attach(optimizer)
    x, y = np.ones((1, 1), "float32"), np.zeros((1, 1), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    after_two = float(model.get_weights()[0][0, 0])
    assert after_two == pytest.approx(-(expected_cosine(0, 100) + expected_cosine(1, 100)))
    schedule.set_total_steps(4)
    model.fit(x, y, epochs=1, verbose=0)
    third_step = after_two - float(model.get_weights()[0][0, 0])
    assert third_step == pytest.approx(expected_cosine(2, 4), rel=1e-5)
    assert expected_cosine(2, 4) == pytest.approx(0.05)


def test_the_deadline_stops_training_and_counts_the_steps_trained():
    """A clock read at each step's end gives 0, 1, 2, 3: a deadline of 3
    ends `fit` after the fourth step, in its first epoch of two."""
    ticks = iter(range(100))
    deadline = Deadline(deadline=3, clock=lambda: next(ticks))
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((10, 1), "float32"), np.zeros((10, 1), "float32")
    history = model.fit(x, y, batch_size=1, epochs=2, callbacks=[deadline], verbose=0)
    assert deadline.steps_trained == 4
    assert len(history.history["loss"]) == 1


def test_a_time_limited_search_records_its_plan(cifar10):
    clf = AdaNASClassifier(
        architecture="1@24",
        max_iterations=3,
        time_limit="45s",
        batch_size=16,
        seed=0,
        verbose=0,
    )
    images, labels = cifar10["x_train"][:64], cifar10["y_train"][:64]
    clf.fit(images, labels)
    assert 1 <= len(clf.history_) <= 3
    for record in clf.history_:
        plan = record["plan"]
        assert plan["steps"] >= CALIBRATION_STEPS
        assert CALIBRATION_STEPS <= record["steps"] <= plan["steps"]
        assert plan["seconds_per_step"] > 0
        assert 1 <= plan["planned_iterations"] <= 3
    assert clf.stop_reason_ in (
        "reached max_iterations=3",
        f"ran the {len(clf.history_)} iterations planned for time_limit=45s",
        "too little of time_limit=45s left for another iteration",
    )
    assert clf.predict(images).shape == (64,)
    assert set(clf.predict(images)) <= set(np.unique(labels))


class Interrupted(Exception):
    pass


class InterruptInSecondEpoch(keras.callbacks.Callback):
    """Stops the process's search (as a Ctrl-C would) as the training's
    second epoch begins, once the first epoch's backup is written."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch >= 1:
            raise Interrupted


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="JAX's CPU compile of the step outlasts the limit here (the backup "
    "itself is NumPy, the same on every backend)",
)
def test_a_time_limited_search_resumes_its_iteration_from_a_backup(cifar10, tmp_path, capsys):
    """Interrupted in its first iteration, a time-limited search resumed in
    the same directory restores the iteration's last epoch backup: its steps
    and seconds go on from there (the new process times its step again,
    those steps counting too) instead of training anew; and a backup whose
    plan was complete goes straight on to the selection."""
    arguments = {
        "architecture": "1@24",
        "max_iterations": 1,
        "time_limit": "45s",
        "batch_size": 16,
        "seed": 0,
        "directory": tmp_path / "project",
        "verbose": 1,
    }
    images, labels = cifar10["x_train"][:64], cifar10["y_train"][:64]
    with pytest.raises(Interrupted):
        AdaNASClassifier(**arguments).fit(images, labels, callbacks=[InterruptInSecondEpoch()])
    record = read_json(tmp_path / "project" / "backup" / "backup.json")
    progress = TimedProgress.from_json(record["progress"])
    assert record["epoch"] == 1
    assert progress.steps == CALIBRATION_STEPS + 64 // 16
    assert progress.seconds > 0 and progress.plan.steps > progress.steps
    # The same backup, as though its plan had ended with the first epoch.
    shutil.copytree(tmp_path / "project", tmp_path / "complete")
    record["progress"]["plan"]["steps"] = progress.steps
    write_json_atomically(record, tmp_path / "complete" / "backup" / "backup.json")
    capsys.readouterr()

    clf = AdaNASClassifier(**arguments).fit(images, labels)
    assert (
        f"Iteration 1: restored the backup after {progress.steps} of {progress.plan.steps} "
        "planned steps"
    ) in capsys.readouterr().out
    (history,) = clf.history_
    assert history["resumed_after_epoch"] == 1
    assert history["steps"] >= progress.steps + CALIBRATION_STEPS
    assert history["plan"]["planned_iterations"] == 1
    assert history["seconds"] > progress.seconds
    assert not (tmp_path / "project" / "backup").exists()
    assert clf.predict(images).shape == (64,)

    done = AdaNASClassifier(**{**arguments, "directory": tmp_path / "complete"}).fit(images, labels)
    (history,) = done.history_
    assert history["steps"] == history["plan"]["steps"] == progress.steps
    assert history["images_per_second"] is None  # no step trained
    assert history["resumed_after_epoch"] == 1
    assert history["seconds"] > progress.seconds
    assert not (tmp_path / "complete" / "backup").exists()
