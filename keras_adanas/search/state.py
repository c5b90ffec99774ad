"""Typed records of a search: its candidates, iterations, members and state.

The records turn into the plain JSON the project directory and the saved
classifier hold (`to_json`) and back (`from_json`); `AdaNASClassifier`'s
`history_` and `members_` are their JSON form.
"""

import dataclasses
import enum

import keras
import numpy as np

from keras_adanas.architecture import Architecture


class IterationStatus(str, enum.Enum):
    """How an iteration ended."""

    CHOSEN = "chosen"
    """A candidate joined the ensemble."""
    ALL_DIVERGED = "all_diverged"
    """Every candidate's loss became NaN or infinite: the iteration is skipped."""


@dataclasses.dataclass(frozen=True)
class CandidateRecord:
    """One trained candidate.

    Attributes:
        architecture: str, its `N@F`.
        train_loss: float, its last epoch's mean training loss, or None when
            it diverged (so the record stays strict JSON).
        selection_loss: float, its candidate ensemble's loss on the selection
            data, or None (a single candidate, or a diverged one).
        diverged: bool.
    """

    architecture: str
    train_loss: float | None
    selection_loss: float | None
    diverged: bool

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record):
        return cls(**{field.name: record[field.name] for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class IterationRecord:
    """One finished iteration, as its `report.json` holds it.

    Attributes:
        iteration: int, 1-based.
        status: an `IterationStatus`.
        candidates: tuple of `CandidateRecord`.
        chosen: int, the index of the chosen candidate, or None.
        mixture_weights: the ensemble's mixture weights after the
            iteration, as nested lists, or None when nothing was chosen.
        steps: int, training steps trained (against `plan["steps"]`
            planned, in a time-limited search).
        batch_size: int, the batch size it trained with.
        resumed_after_epoch: int, epochs restored from a backup (0 if none).
        seconds: float, wall time of training and selection in this run
            (of a time-limited iteration resumed from a backup, with the
            seconds it had spent until then).
        images_per_second: float or None, steady-state training throughput.
        plan: dict or None, the `IterationPlan` (as JSON) of a time-limited
            search: the seconds it was given, the measured step time, the
            steps planned and the iterations planned in all.
    """

    iteration: int
    status: IterationStatus
    candidates: tuple
    chosen: int | None
    mixture_weights: list | None
    steps: int
    batch_size: int
    resumed_after_epoch: int
    seconds: float
    images_per_second: float | None
    plan: dict | None = None

    @property
    def architecture(self):
        """The chosen candidate's `N@F`, or None."""
        return None if self.chosen is None else self.candidates[self.chosen].architecture

    def to_json(self):
        record = dataclasses.asdict(self)
        record["status"] = self.status.value
        record["candidates"] = [c.to_json() for c in self.candidates]
        record["architecture"] = self.architecture
        return record

    @classmethod
    def from_json(cls, record):
        chosen = record["chosen"]
        status = record.get("status")  # absent from reports of earlier versions
        return cls(
            iteration=int(record["iteration"]),
            status=IterationStatus(status)
            if status
            else IterationStatus.ALL_DIVERGED
            if chosen is None
            else IterationStatus.CHOSEN,
            candidates=tuple(CandidateRecord.from_json(c) for c in record["candidates"]),
            chosen=chosen,
            mixture_weights=record["mixture_weights"],
            steps=record["steps"],
            batch_size=record["batch_size"],
            resumed_after_epoch=record.get("resumed_after_epoch", 0),
            seconds=record["seconds"],
            images_per_second=record.get("images_per_second"),
            plan=record.get("plan"),
        )


@dataclasses.dataclass(frozen=True)
class MemberRecord:
    """One member of the ensemble.

    Attributes:
        iteration: int, the iteration that chose it.
        architecture: str, its `N@F`.
        params: int, its served parameters.
        weight: its mixture weight: a float, or a list (one per class).
    """

    iteration: int
    architecture: str
    params: int
    weight: float | list

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record):
        return cls(**{field.name: record[field.name] for field in dataclasses.fields(cls)})


@dataclasses.dataclass
class SearchState:
    """What a search holds between iterations.

    Attributes:
        members: list of the frozen member models, oldest first.
        mixture: the ensemble's `MixtureWeights`, or None before a member.
        ensemble: the served `Ensemble`, or None before a member.
        history: list of `IterationRecord`, skipped iterations included.
        member_records: list of `MemberRecord`, one per member.
        classes: list of the class labels, or None before the data is read.
        stop_reason: str, why the search stopped (after `Search.run`).
    """

    members: list = dataclasses.field(default_factory=list)
    mixture: object = None
    ensemble: keras.Model | None = None
    history: list = dataclasses.field(default_factory=list)
    member_records: list = dataclasses.field(default_factory=list)
    classes: list | None = None
    stop_reason: str | None = None

    @property
    def architectures(self):
        """The members' `Architecture`s, oldest first."""
        return [Architecture.parse(m.architecture) for m in self.member_records]

    @property
    def next_iteration(self):
        return len(self.history) + 1

    @classmethod
    def of_ensemble(cls, ensemble, member_records, history, stop_reason=None):
        """The state of a fitted or saved ensemble with its records."""
        return cls(
            members=list(ensemble.members),
            mixture=ensemble.mixture_weights,
            ensemble=ensemble,
            history=list(history),
            member_records=list(member_records),
            classes=list(ensemble.classes) if ensemble.classes is not None else None,
            stop_reason=stop_reason,
        )


def member_records(architectures, mixture, history, num_classes, image_shape):
    """The `MemberRecord`s of an ensemble of `architectures` with `mixture`."""
    weights = mixture.member_weights()
    joined = [record.iteration for record in history if record.chosen is not None]
    return [
        MemberRecord(
            iteration=joined[k],
            architecture=str(architecture),
            params=architecture.count_params(num_classes, image_shape=image_shape),
            weight=np.asarray(weights[k]).tolist(),
        )
        for k, architecture in enumerate(architectures)
    ]
