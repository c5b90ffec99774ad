"""The AdaNAS ensemble: frozen members whose logits are mixed by learned weights."""

import keras
import numpy as np
from keras import ops

MIXTURE_KINDS = ("uniform", "scalar", "vector")


@keras.saving.register_keras_serializable(package="keras_adanas")
class MixtureWeights(keras.layers.Layer):
    """Mixes member logits: `sum_k w_k * logits_k`, before any softmax.

    Every weight starts at `1 / num_members`. No bias, no regularization.

    Args:
        kind: `"uniform"` (`w_k = 1 / num_members`, nothing learned),
            `"scalar"` (one learned weight per member) or `"vector"` (one
            learned weight per member and class).
        num_members: int >= 1.
        num_classes: int, needed for `"vector"`.
        **kwargs: base layer arguments (`name`, `trainable`, ...).

    Call arguments:
        inputs: a list of `num_members` logits tensors `(batch, classes)`.

    Example:

    >>> mix = MixtureWeights("scalar", num_members=2, num_classes=10)
    >>> logits = mix([keras.ops.ones((4, 10)), keras.ops.zeros((4, 10))])
    """

    def __init__(self, kind="uniform", num_members=1, num_classes=None, **kwargs):
        super().__init__(**kwargs)
        if kind not in MIXTURE_KINDS:
            raise ValueError(
                f"`mixture_weights` must be one of {MIXTURE_KINDS}. Received: "
                f"mixture_weights={kind!r}"
            )
        if int(num_members) < 1:
            raise ValueError(f"`num_members` must be >= 1. Received: num_members={num_members}")
        if kind == "vector" and not num_classes:
            raise ValueError("`num_classes` is required for vector mixture weights.")
        self.kind = kind
        self.num_members = int(num_members)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.weight = None
        if kind != "uniform":
            shape = (
                (self.num_members,) if kind == "scalar" else (self.num_members, self.num_classes)
            )
            self.weight = self.add_weight(
                shape=shape,
                initializer=keras.initializers.Constant(1.0 / self.num_members),
                name="mixture_weight",
            )
        self.built = True  # The weights do not depend on the input shape.

    @property
    def num_params(self):
        """Parameters the mixture adds to the served ensemble (0, m or m*K)."""
        return 0 if self.weight is None else int(np.prod(self.weight.shape))

    def member_weights(self):
        """The weights as a NumPy array `(num_members,)` or `(num_members, K)`."""
        if self.weight is None:
            return np.full((self.num_members,), 1.0 / self.num_members, "float32")
        return ops.convert_to_numpy(self.weight)

    def call(self, inputs):
        if len(inputs) != self.num_members:
            raise ValueError(
                f"MixtureWeights expects {self.num_members} member logits. "
                f"Received: {len(inputs)} inputs"
            )
        stacked = ops.stack(inputs, axis=0)  # (members, batch, classes)
        if self.weight is None:
            return ops.mean(stacked, axis=0)
        weight = ops.cast(self.weight, stacked.dtype)
        if self.kind == "scalar":
            weight = ops.reshape(weight, (-1, 1, 1))
        else:
            weight = ops.expand_dims(weight, 1)
        return ops.sum(stacked * weight, axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, num_members=self.num_members, num_classes=self.num_classes)
        return config


@keras.saving.register_keras_serializable(package="keras_adanas")
class Ensemble(keras.Model):
    """The served AdaNAS ensemble `f = sum_k w_k h_k`: images in, logits out.

    Members are frozen (their batch norms always use moving statistics) and so
    are the mixture weights. The ensemble outputs logits; apply a softmax to
    get probabilities (`export_saved_model` does so).

    Args:
        members: list of member models, each raw images -> logits, with the
            same input shape and number of classes; each needs a unique name.
        mixture_weights: a `MixtureWeights` layer over `len(members)` members.
        classes: sequence of the label values of the output classes, or None.
        class_names: sequence of display names of the classes, or None.
        metadata: a JSON-serializable dict saved with the model (the
            classifier keeps its arguments and history there), or None.
        name: str, the model name.

    Example:

    >>> ensemble = Ensemble([member_1, member_2], MixtureWeights("uniform", 2))
    >>> ensemble.predict(images).shape
    (8, 10)
    """

    def __init__(
        self,
        members,
        mixture_weights,
        classes=None,
        class_names=None,
        metadata=None,
        name="adanas_ensemble",
        **kwargs,
    ):
        members = list(members)
        if not members:
            raise ValueError("An ensemble needs at least one member. Received: members=[]")
        if not isinstance(mixture_weights, MixtureWeights):
            raise TypeError(
                "`mixture_weights` must be a MixtureWeights layer. Received: "
                f"{type(mixture_weights).__name__}"
            )
        if mixture_weights.num_members != len(members):
            raise ValueError(
                f"The mixture weighs {mixture_weights.num_members} members. "
                f"Received: {len(members)} members"
            )
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"Member names must be unique. Received: {names}")
        shapes = {tuple(m.input_shape[1:]) for m in members}
        outputs = {tuple(m.output_shape[1:]) for m in members}
        if len(shapes) != 1 or len(outputs) != 1:
            raise ValueError(
                "All members must take the same images and give the same number "
                f"of classes. Received: input shapes {shapes}, output shapes {outputs}"
            )
        for member in members:
            member.trainable = False
        mixture_weights.trainable = False

        # === Functional model ===
        inputs = keras.Input(shape=shapes.pop(), name="images")
        logits = mixture_weights([member(inputs) for member in members])
        super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)

        # === Config ===
        self.members = members
        self.mixture_weights = mixture_weights
        self.classes = None if classes is None else list(classes)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.metadata = metadata

    @property
    def num_classes(self):
        return int(self.output_shape[-1])

    def get_config(self):
        return {
            "members": [keras.saving.serialize_keras_object(m) for m in self.members],
            "mixture_weights": keras.saving.serialize_keras_object(self.mixture_weights),
            "classes": _to_json(self.classes),
            "class_names": self.class_names,
            "metadata": self.metadata,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [keras.saving.deserialize_keras_object(m) for m in config["members"]]
        config["mixture_weights"] = keras.saving.deserialize_keras_object(config["mixture_weights"])
        return cls(**config)


def _to_json(values):
    if values is None:
        return None
    return [v.item() if isinstance(v, np.generic) else v for v in values]
