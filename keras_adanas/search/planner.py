"""Plans a search to a wall-clock limit: `AdaNASClassifier(time_limit=...)`.

A `TimePlanner` holds the deadline. Each iteration measures its own training
step (`CALIBRATION_STEPS` steps, the first of which compiles), then asks the
planner for an `IterationPlan`: the share of the time left it gets, minus
what its selection is expected to take, at the measured step time, is the
number of steps its learning-rate and drop-path schedules then span; as it
trains, `replan` fits the rest to the step time measured since. The
first iteration also decides how many iterations the search plans: as many
as give each member at least `MIN_EPOCHS_PER_MEMBER` passes over the data,
on top of what the first spent compiling, timing and selecting (at least
one, at most `max_iterations`), so that a short limit trains one
well-trained member rather than several half-trained ones. A few timed steps
can misjudge the step the whole iteration runs at, so each iteration's first
`replan` (after its first epochs) decides that number again from the step
time measured over them, and the iteration takes its new share.
"""

import dataclasses
import math
import re
import time

import numpy as np

CALIBRATION_STEPS = 8
"""Training steps each iteration takes before it plans: the first compiles."""

TIMED_CALIBRATION_STEPS = 5
"""The last steps of the calibration, whose median time is the step time."""

MIN_EPOCHS_PER_MEMBER = 40
"""The fewest passes over the training data a member is planned to get when
the limit leaves time for several (see benchmarks/README.md, "one member or
two": at equal epochs in all, two members of 10 epochs scored below one of
20, and two of 20 below one of 40, since a member that trains longer learns
more than a second one adds)."""

SAFETY_FRACTION = 0.97
"""The share of the limit the plan fills; the rest absorbs timing noise."""

SELECTION_COST = 0.5
"""An inference step's cost over a training step's, for the selection estimate."""

SELECTION_COMPILE_COST = 0.5
"""What compiling the selection's inference passes costs, over compiling the
training step (the first calibration step)."""

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$", re.IGNORECASE)


def parse_time_limit(time_limit):
    """Seconds of a `time_limit`: a number of seconds, or a string such as
    `"90s"`, `"10m"`, `"2h"` or `"1.5h"`; None stays None.

    Raises:
        ValueError, TypeError: naming `time_limit`, when it is not positive
            and finite or not one of those forms.

    Example:

    >>> parse_time_limit("10m")
    600.0
    """
    if time_limit is None:
        return None
    if isinstance(time_limit, (bool, np.bool_)):
        raise TypeError(
            "`time_limit` must be a number of seconds or a string such as '90s', '10m' "
            f"or '2h'. Received: time_limit={time_limit!r}"
        )
    if isinstance(time_limit, str):
        match = _LIMIT.match(time_limit)
        if not match:
            raise ValueError(
                "`time_limit` must be a number of seconds or a string such as '90s', "
                f"'10m' or '2h'. Received: time_limit={time_limit!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    elif isinstance(time_limit, (int, float, np.integer, np.floating)):
        seconds = float(time_limit)
    else:
        raise TypeError(
            "`time_limit` must be a number of seconds or a string such as '90s', '10m' "
            f"or '2h'. Received: time_limit={time_limit!r} of type {type(time_limit).__name__}"
        )
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"`time_limit` must be positive and finite. Received: time_limit={time_limit!r}"
        )
    return seconds


@dataclasses.dataclass(frozen=True)
class IterationPlan:
    """How long an iteration of a time-limited search trains.

    Attributes:
        seconds: float, the wall time the iteration was given (training,
            its calibration included, and selection).
        seconds_per_step: float, the measured time of one training step.
        reserved_seconds: float, of `seconds`, what the selection and the
            writing are expected to take.
        steps: int, training steps planned, the calibration's included
            (after a `TimePlanner.replan`, as planned anew).
        planned_iterations: int, the iterations the search plans in all
            (as last decided: see `TimePlanner.replan`).
        replanned_seconds_per_step: float or None, the step time measured
            over the epochs trained when the rest was last planned anew
            (`TimePlanner.replan`, after each epoch).
        overhead_seconds: float, what the iteration spent before its first
            plan (building, compiling and timing its step): with the
            reserve, what a later iteration needs on top of its steps.
    """

    seconds: float
    seconds_per_step: float
    reserved_seconds: float
    steps: int
    planned_iterations: int
    replanned_seconds_per_step: float | None = None
    overhead_seconds: float = 0.0

    def to_json(self):
        return dataclasses.asdict(self)


class TimePlanner:
    """Splits what is left of a wall-clock limit among the iterations left.

    Args:
        limit_seconds: float, the whole search's limit.
        spent_seconds: float, what earlier runs of this search spent (a
            resumed search keeps its original limit).
        max_iterations: int, the most iterations the search may still run.
        iterations_before: int, iterations a resumed search ran before.
        clock: callable returning seconds (monotonic); for tests.

    Example:

    >>> planner = TimePlanner(600, max_iterations=10)
    >>> plan = planner.plan(seconds_per_step=0.1, steps_per_epoch=157,
    ...                     selection_steps=63, elapsed_seconds=5)
    """

    def __init__(
        self,
        limit_seconds,
        spent_seconds=0.0,
        max_iterations=1,
        iterations_before=0,
        clock=time.monotonic,
    ):
        self.limit_seconds = float(limit_seconds)
        self.clock = clock
        self.deadline = clock() + SAFETY_FRACTION * self.limit_seconds - float(spent_seconds)
        self.max_iterations = int(max_iterations)
        self.iterations_before = int(iterations_before)
        self.fixed_seconds = 0.0
        self.planned_iterations = None
        self.iterations_done = 0
        self.iteration_started = None
        self.last_overhead = None
        self.steps_per_epoch = None
        self.recount_pending = False

    def remaining(self):
        """Seconds left before the planned end."""
        return self.deadline - self.clock()

    def can_start_iteration(self):
        """Whether another iteration is planned and time is left for it: the
        first always runs (a search returns an ensemble); a later one needs
        twice what the last spent before and after its planned steps
        (compiling, timing, selecting)."""
        if self.iterations_done >= self.max_iterations:
            return False
        if self.planned_iterations is not None and self.iterations_done >= self.planned_iterations:
            return False
        if self.iterations_done == 0 and not self.iterations_before:
            return True
        return self.remaining() > 2 * self.fixed_seconds

    def begin_iteration(self):
        """Marks an iteration's start (its share counts from here)."""
        self.iteration_started = self.clock()
        self.recount_pending = True

    def resume_iteration(self, seconds, planned_iterations):
        """Goes on with an iteration an earlier run began and backed up.

        The `seconds` it had spent count against the limit and towards the
        iteration's share, as though this run had spent them; the number
        of iterations that run planned stands.

        Args:
            seconds: float, the iteration's wall time at its backup.
            planned_iterations: int, the iterations planned in all (an
                `IterationPlan`'s `planned_iterations`).
        """
        self.deadline -= float(seconds)
        self.iteration_started -= float(seconds)
        self.planned_iterations = max(int(planned_iterations) - self.iterations_before, 1)
        self.recount_pending = False  # its first epochs were measured before

    def plan(
        self,
        seconds_per_step,
        steps_per_epoch,
        selection_steps,
        elapsed_seconds=None,
        compile_seconds=0.0,
        steps_done=CALIBRATION_STEPS,
        overhead_seconds=None,
    ):
        """The `IterationPlan` of the iteration under way, once its step is timed.

        Args:
            seconds_per_step: float, the measured training step time.
            steps_per_epoch: int, training steps per pass over the data.
            selection_steps: int, inference batches of the selection.
            elapsed_seconds: float, seconds the iteration has already spent
                (compiling and calibrating); None measures it from
                `begin_iteration`.
            compile_seconds: float, what compiling the training step took:
                the selection's own compiling is expected to take
                `SELECTION_COMPILE_COST` of it, until an iteration has
                measured its overhead.
            steps_done: int, steps the iteration has trained (its
                calibration's; more when resumed from a backup).
            overhead_seconds: float, of `elapsed_seconds`, what went to
                building, compiling and timing (None: all of it; less when
                resumed, the rest having trained).

        Returns:
            An `IterationPlan`.
        """
        if elapsed_seconds is None:
            elapsed_seconds = self.clock() - self.iteration_started
        if overhead_seconds is None:
            overhead_seconds = elapsed_seconds
        now_left = self.remaining()
        reserve = self.selection_seconds(seconds_per_step, selection_steps, compile_seconds)
        self.steps_per_epoch = int(steps_per_epoch)
        if self.planned_iterations is None:
            self.planned_iterations = self._affordable_iterations(
                now_left + elapsed_seconds, seconds_per_step, reserve, overhead_seconds
            )
        iterations_left = max(self.planned_iterations - self.iterations_done, 1)
        share = (now_left + elapsed_seconds) / iterations_left
        training_left = share - elapsed_seconds - reserve
        self.fixed_seconds = overhead_seconds + reserve
        # (the small term: 105.4 s at 0.1 s a step are 1054 steps, not 1053)
        affordable_steps = math.floor(training_left / max(seconds_per_step, 1e-9) + 1e-6)
        steps = int(steps_done) + max(affordable_steps, 0)
        return IterationPlan(
            seconds=share,
            seconds_per_step=float(seconds_per_step),
            reserved_seconds=reserve,
            steps=steps,
            planned_iterations=self.iterations_before + self.planned_iterations,
            overhead_seconds=float(overhead_seconds),
        )

    def _affordable_iterations(self, available, seconds_per_step, reserve, overhead_seconds):
        """The iterations of this run, those done included, that `available`
        seconds from the current iteration's start afford: members of
        `MIN_EPOCHS_PER_MEMBER` epochs with their reserve and overhead (at
        least one more, at most `max_iterations`)."""
        epochs_seconds = MIN_EPOCHS_PER_MEMBER * self.steps_per_epoch * seconds_per_step
        member_seconds = max(epochs_seconds + reserve + overhead_seconds, 1e-9)
        affordable = max(int(available // member_seconds), 1)
        return min(self.iterations_done + affordable, self.max_iterations)

    def replan(self, plan, steps_done, seconds_per_step):
        """`plan` with its steps planned anew once `steps_done` steps have
        trained at a measured `seconds_per_step`: those done and as many as
        fit before its training deadline.

        The first replan of an iteration begun in this run also decides
        anew how many iterations the search plans, by the rule of `plan`
        at the step time measured over the iteration's first epochs; when
        the number changes, the iteration's share (`IterationPlan.seconds`)
        becomes what is left over the iterations left, itself included.
        (A number that would end the iteration's training at once is not
        taken.)

        Returns:
            An `IterationPlan` (its `replanned_seconds_per_step` set).
        """
        if self.recount_pending:
            self.recount_pending = False
            plan = self._recounted(plan, seconds_per_step)
        left = self.training_deadline(plan) - self.clock()
        more = max(math.floor(left / max(seconds_per_step, 1e-9) + 1e-6), 0)
        return dataclasses.replace(
            plan,
            steps=int(steps_done) + more,
            replanned_seconds_per_step=float(seconds_per_step),
        )

    def _recounted(self, plan, seconds_per_step):
        """`plan` with the iterations counted anew at `seconds_per_step`."""
        elapsed = self.clock() - self.iteration_started
        available = self.remaining() + elapsed  # this iteration's and the later ones'
        planned = self._affordable_iterations(
            available, seconds_per_step, plan.reserved_seconds, plan.overhead_seconds
        )
        if planned == self.planned_iterations:
            return plan
        recounted = dataclasses.replace(
            plan,
            seconds=available / (planned - self.iterations_done),
            planned_iterations=self.iterations_before + planned,
        )
        if self.training_deadline(recounted) <= self.clock():
            return plan
        self.planned_iterations = planned
        return recounted

    def training_deadline(self, plan):
        """The clock reading by which the iteration's training must end."""
        return self.iteration_started + plan.seconds - plan.reserved_seconds

    def selection_seconds(self, seconds_per_step, selection_steps, compile_seconds=0.0):
        """What an iteration's selection and writing are expected to take:
        the last iteration's measured overhead, or before any, the selection
        batches at `SELECTION_COST` of a training step and
        `SELECTION_COMPILE_COST` of `compile_seconds` (the inference passes
        compile too)."""
        if self.last_overhead is not None:
            return self.last_overhead
        return SELECTION_COST * seconds_per_step * selection_steps + SELECTION_COMPILE_COST * float(
            compile_seconds
        )

    def end_iteration(self, training_ended):
        """Marks an iteration's end; `training_ended` is the clock reading
        when its training ended, so what followed is the next reserve."""
        self.iterations_done += 1
        self.last_overhead = max(self.clock() - training_ended, 0.0)
