"""Knowledge distillation: which teacher each mode uses, and the KD loss.

`KD = CE(softmax(teacher / T), softmax(student / T))`, averaged over the
batch and multiplied by the weight. Teachers are the previous ensemble's
members run in inference mode:

- `"none"` (NOKD): no KD term; training does not read earlier members.
- `"born_again"` (BAN): the raw logits of the member added last. (The
  reference code used that member's *weighted* logits, an accidental
  temperature of i-1; we use the raw logits.)
- `"adaptive"` (AKD): the logits of the whole previous ensemble f_{i-1}.
"""

import dataclasses

from keras import ops

MODES = ("none", "born_again", "adaptive")


@dataclasses.dataclass(frozen=True)
class Distillation:
    """A distillation setting.

    `AdaNASClassifier` builds one from its `distillation` (a mode name),
    `kd_temperature` and `kd_weight` arguments; the `Distiller` of an
    iteration takes one.

    Args:
        mode: one of `"none"`, `"born_again"`, `"adaptive"`.
        temperature: float > 0, `T`.
        weight: float >= 0, the KD term's weight in a candidate's loss.

    Example:

    >>> kd = Distillation("adaptive", temperature=2.0)
    >>> kd.active, kd.needs_teacher(iteration=1)
    (True, False)
    """

    mode: str = "none"
    temperature: float = 1.0
    weight: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(
                f"`distillation` must be one of {MODES}. Received: distillation={self.mode!r}"
            )
        if not float(self.temperature) > 0:
            raise ValueError(
                f"`kd_temperature` must be > 0. Received: kd_temperature={self.temperature!r}"
            )
        if not float(self.weight) >= 0:
            raise ValueError(f"`kd_weight` must be >= 0. Received: kd_weight={self.weight!r}")

    @property
    def active(self):
        """Whether there is a KD term at all."""
        return self.mode != "none" and self.weight > 0

    def needs_teacher(self, iteration):
        """Whether `iteration` (1-based) has a teacher: KD on and a member exists."""
        return self.active and iteration > 1


def distillation_loss(teacher_logits, student_logits, temperature=1.0):
    """`CE(softmax(teacher / T), softmax(student / T))`, mean over the batch.

    No gradient flows into the teacher.

    Args:
        teacher_logits: tensor or array `(batch, classes)`.
        student_logits: tensor or array `(batch, classes)`.
        temperature: float, `T`.

    Returns:
        A scalar tensor.
    """
    # PyTorch's stop_gradient takes tensors only, not NumPy arrays.
    teacher_logits = ops.convert_to_tensor(teacher_logits)
    targets = ops.softmax(ops.stop_gradient(teacher_logits) / temperature, axis=-1)
    log_probs = ops.log_softmax(student_logits / temperature, axis=-1)
    return ops.mean(-ops.sum(targets * log_probs, axis=-1))


def teacher_logits(mode, member_logits, ensemble_logits):
    """Picks the teacher's logits for `mode`.

    Args:
        mode: a distillation mode other than `"none"`.
        member_logits: list of the previous members' logits, oldest first.
        ensemble_logits: the previous ensemble's logits `f_{i-1}`.

    Returns:
        The teacher's logits.
    """
    if mode == "born_again":
        return member_logits[-1]
    if mode == "adaptive":
        return ensemble_logits
    raise ValueError(f"Distillation mode {mode!r} has no teacher.")
