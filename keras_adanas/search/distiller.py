"""`Distiller`: the training model of one AdaNAS iteration.

It holds the candidates (the students, each a `NASNetA` with its auxiliary
head), the frozen members of the previous ensemble (the teacher) and one
`MixtureWeights` per candidate ensemble `f_{i-1} + w_i h_j`. One compiled
step per batch trains all of them: its loss is the sum of every candidate's
own loss and every candidate ensemble's cross-entropy. The sum changes nothing
about each part's gradient: candidates share no variables, and member logits
enter the ensembles through a stop-gradient, so candidate j only ever receives
the gradient of its own loss and each mixture only that of its ensemble's
loss. `GroupedClippingSGD` then clips each candidate's gradient to norm 5 on
its own.
"""

import keras
from keras import ops

from keras_adanas.distillation import Distillation, distillation_loss, teacher_logits
from keras_adanas.distribute import replicas_in_sync
from keras_adanas.ensemble import MixtureWeights
from keras_adanas.nasnet import AUX_LOGITS, LOGITS
from keras_adanas.recipe import (
    AUXILIARY_LOSS_WEIGHT,
    LABEL_SMOOTHING,
    SparseCategoricalCrossentropyWithSmoothing,
)
from keras_adanas.workarounds import DistillerTrainerHooks

TEACHER_KEY = "teacher"
MIXTURE_FITS = ("training", "inference", "refit")
"""How learned mixture weights are fitted (`Distiller`'s `mixture_fit`)."""


def candidate_key(index):
    return f"candidate_{index}"


def auxiliary_key(index):
    return f"candidate_{index}_aux"


def _logits(candidate, outputs):
    """A candidate's logits among its outputs (a dict with an auxiliary head)."""
    return outputs[LOGITS] if candidate.include_auxiliary_head else outputs


def member_key(index):
    return f"member_{index}"


def ensemble_key(index):
    return f"ensemble_{index}"


class Distiller(DistillerTrainerHooks, keras.Model):
    """The training model of one iteration (see the module docstring).

    Args:
        candidates: list of `NASNetA`, with their auxiliary heads or all
            without (then no auxiliary loss).
        members: list of the previous ensemble's frozen members (images ->
            logits), oldest first.
        previous_mixture: the previous ensemble's `MixtureWeights` (frozen),
            or None at iteration 1.
        mixture_kind: `"uniform"`, `"scalar"` or `"vector"`.
        distillation: a `Distillation`.
        label_smoothing: float, label smoothing of the candidates' losses.
        auxiliary_weight: float, the weight of each auxiliary head's loss.
        mixture_fit: how learned mixture weights are fitted (see
            `MIXTURE_FITS`): `"training"`, in the training step on the
            candidate's training-mode logits (DESIGN step 3); `"inference"`,
            in the training step on a stop-gradient inference-mode pass of
            the candidate, as the ensemble serves it; `"refit"`, not in
            training: `keras_adanas.search.mixture_fit` fits them on the
            selection data once the candidates are trained.

    Call returns a dict: `candidate_j` logits, and `candidate_j_aux` logits
    of candidates with an auxiliary head; in
    inference, or in training when mixture weights are learned,
    `ensemble_j` logits; in inference `member_k` logits (the frozen
    members'); `teacher` logits when distilling.
    """

    def __init__(
        self,
        candidates,
        members=(),
        previous_mixture=None,
        mixture_kind="uniform",
        distillation=None,
        label_smoothing=LABEL_SMOOTHING,
        auxiliary_weight=AUXILIARY_LOSS_WEIGHT,
        mixture_fit="training",
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if mixture_fit not in MIXTURE_FITS:
            raise ValueError(
                f"`mixture_fit` must be one of {MIXTURE_FITS}. "
                f"Received: mixture_fit={mixture_fit!r}"
            )
        self.mixture_fit = mixture_fit
        self.auxiliary_weight = float(auxiliary_weight)
        self.candidates = list(candidates)
        self.members = list(members)
        for member in self.members:
            member.trainable = False
        if previous_mixture is not None:
            previous_mixture.trainable = False
        self.previous_mixture = previous_mixture
        self.distillation = distillation or Distillation()
        num_classes = self.candidates[0].num_classes
        self.mixtures = [
            MixtureWeights(mixture_kind, len(self.members) + 1, num_classes, name=f"mixture_{j}")
            for j in range(len(self.candidates))
        ]
        # Learned in the training step, or refitted after it (then frozen here).
        self.learns_mixture = mixture_kind != "uniform" and mixture_fit != "refit"
        for mixture in self.mixtures:
            mixture.trainable = self.learns_mixture
        self.has_teacher = self.distillation.active and bool(self.members)
        self.candidate_loss = SparseCategoricalCrossentropyWithSmoothing(label_smoothing)
        self.ensemble_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.candidate_trackers = [
            keras.metrics.Mean(name=f"{candidate_key(j)}_loss") for j in range(len(candidates))
        ]
        # Uniform weights learn nothing, so their ensembles are not computed in
        # training and have no loss to report.
        self.ensemble_trackers = [
            keras.metrics.Mean(name=f"{ensemble_key(j)}_loss")
            for j in range(len(candidates) if self.learns_mixture else 0)
        ]
        self.built = True  # Candidates, members and mixtures are built already.

    def variable_groups(self):
        """One clipping group per candidate, then one per learned mixture."""
        groups = [list(c.trainable_variables) for c in self.candidates]
        groups += [list(m.trainable_variables) for m in self.mixtures if m.trainable_variables]
        return groups

    def call(self, images, training=False):
        needs_members = bool(self.members) and (
            not training or self.learns_mixture or self.has_teacher
        )
        member_logits = []
        if needs_members:
            # Frozen members: inference mode, no gradient.
            member_logits = [
                ops.stop_gradient(member(images, training=False)) for member in self.members
            ]
        outputs = {}
        if not training:
            outputs.update((member_key(k), logits) for k, logits in enumerate(member_logits))
        if self.has_teacher:
            previous = None
            if self.distillation.mode == "adaptive":
                previous = self.previous_mixture(member_logits)
            outputs[TEACHER_KEY] = teacher_logits(self.distillation.mode, member_logits, previous)
        for j, candidate in enumerate(self.candidates):
            out = candidate(images, training=training)
            if candidate.include_auxiliary_head:
                outputs[auxiliary_key(j)] = out[AUX_LOGITS]
            outputs[candidate_key(j)] = _logits(candidate, out)
            if not training or self.learns_mixture:
                served = outputs[candidate_key(j)]
                if training and self.mixture_fit == "inference":
                    # The candidate as the ensemble serves it: moving batch
                    # statistics, no drop path.
                    served = _logits(candidate, candidate(images, training=False))
                outputs[ensemble_key(j)] = self.mixtures[j](
                    [*member_logits, ops.stop_gradient(served)]
                )
        return outputs

    def distillation_term(self, teacher, student):
        """`kd_weight * KD(teacher, student)`; no gradient reaches the teacher."""
        return self.distillation.weight * distillation_loss(
            teacher, student, self.distillation.temperature
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        # NASNetA's logits are float32 under any policy, but a model whose
        # logits layer follows a mixed policy gives float16/bfloat16 ones; the
        # losses, and the float32 regularization terms they join, are float32.
        y_pred = {key: ops.cast(value, "float32") for key, value in y_pred.items()}
        total = 0.0
        for j, candidate in enumerate(self.candidates):
            loss = _batch_mean(self.candidate_loss, y, y_pred[candidate_key(j)])
            if auxiliary_key(j) in y_pred:
                loss = loss + self.auxiliary_weight * _batch_mean(
                    self.candidate_loss, y, y_pred[auxiliary_key(j)]
                )
            if self.has_teacher:
                loss = loss + self.distillation_term(y_pred[TEACHER_KEY], y_pred[candidate_key(j)])
            if candidate.losses:
                loss = loss + ops.sum(ops.stack(candidate.losses))
            self.candidate_trackers[j].update_state(loss)
            total = total + loss
            if self.learns_mixture:
                ensemble_loss = _batch_mean(self.ensemble_loss, y, y_pred[ensemble_key(j)])
                self.ensemble_trackers[j].update_state(ensemble_loss)
                total = total + ensemble_loss
        # The trackers hold this replica's own means; the loss to differentiate
        # is its share of the global mean (see `replicas_in_sync`).
        return total * (1.0 / replicas_in_sync())

    @property
    def metrics(self):
        return [*super().metrics, *self.candidate_trackers, *self.ensemble_trackers]


def _batch_mean(loss, y_true, y_pred):
    """The mean of a Keras loss over the batch, unscaled: calling a
    `keras.losses.Loss` under a TF strategy divides by the replicas already,
    which `Distiller.compute_loss` does once for its whole sum instead."""
    return ops.mean(loss.call(y_true, y_pred))
