"""`GroupedClippingSGD`: SGD that clips each candidate's gradient on its own."""

import keras
from keras import ops

from keras_adanas.distribute import all_reduce_sum, replicas_in_sync
from keras_adanas.recipe import CLIP_NORM


@keras.saving.register_keras_serializable(package="keras_adanas")
class GroupedClippingSGD(keras.optimizers.SGD):
    """SGD that clips the gradient of each group of variables to its own norm.

    `global_clipnorm` would clip all candidates together, so one candidate's
    huge gradient would shrink every other candidate's update; here each
    group's gradient is rescaled to norm at most `group_clipnorm` on its own,
    then Keras' SGD update runs unchanged. Under a multi-replica TensorFlow
    strategy the norm is that of the gradient summed over the replicas, as on
    one device.

    Args:
        groups: list of lists of variables; variables in no group are not
            clipped. The groups are not part of the config (variables do not
            serialize): an optimizer made by `from_config` clips nothing
            until it is made again with its groups.
        group_clipnorm: float, the norm each group is clipped to.
        **kwargs: `keras.optimizers.SGD` arguments (no `clipnorm`,
            `global_clipnorm` or `clipvalue`).

    Example:

    >>> first, second = keras.Variable([3.0, 4.0]), keras.Variable([0.3, 0.4])
    >>> optimizer = GroupedClippingSGD([[first], [second]], group_clipnorm=1.0,
    ...                                learning_rate=1.0)
    >>> optimizer.apply([first.value, second.value], [first, second])
    >>> first.numpy(), second.numpy()  # [3, 4] / 5 clipped; [0.3, 0.4] not
    (array([2.4, 3.2], dtype=float32), array([0., 0.], dtype=float32))
    """

    def __init__(self, groups=(), group_clipnorm=CLIP_NORM, **kwargs):
        super().__init__(**kwargs)
        self.group_clipnorm = float(group_clipnorm)
        self._group_of = {id(v): g for g, group in enumerate(groups) for v in group}
        self._built_groups = []

    def build(self, variables):
        super().build(variables)
        # JAX's stateless step calls `apply(grads)` alone, for the variables
        # built here, in this order: their groups, by position. (Group indices,
        # not the variables: a list of variables set on an optimizer would be
        # tracked as its own variables.)
        self._built_groups = [self._group_of.get(id(v), -1) for v in variables]

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            groups = list(self._built_groups)
        else:
            groups = [self._group_of.get(id(v), -1) for v in trainable_variables]
        grads = list(grads)
        replicas = replicas_in_sync()
        if replicas > 1:
            # Under a TF strategy each replica holds its share of the gradient
            # and Keras sums them after `apply`; the clipping norm is that of
            # the sum, so sum here, clip, and hand each replica 1/replicas of
            # the clipped sum for Keras to add up again.
            present = [i for i, grad in enumerate(grads) if grad is not None]
            summed = all_reduce_sum([grads[i] for i in present])
            for i, grad in zip(present, summed, strict=True):
                grads[i] = grad
        grads = self.clip_groups(grads, groups)
        if replicas > 1:
            grads = [None if g is None else g * (1.0 / replicas) for g in grads]
        return super().apply(grads, trainable_variables)

    def clip_groups(self, grads, groups):
        """Each group's gradients times `group_clipnorm / max(norm, group_clipnorm)`,
        `norm` being that of the group's whole gradient.

        Args:
            grads: list of gradients (or None).
            groups: list of each gradient's group index, -1 for none.
        """
        members = {}
        for index, group in enumerate(groups):
            if group >= 0 and grads[index] is not None:
                members.setdefault(group, []).append(index)
        clipped = list(grads)
        for indices in members.values():
            squares = [ops.sum(ops.square(ops.cast(grads[i], "float32"))) for i in indices]
            norm = ops.sqrt(ops.sum(ops.stack(squares)))
            scale = self.group_clipnorm / ops.maximum(norm, self.group_clipnorm)
            for i in indices:
                clipped[i] = ops.multiply(grads[i], ops.cast(scale, grads[i].dtype))
        return clipped

    def get_config(self):
        config = super().get_config()
        config["group_clipnorm"] = self.group_clipnorm
        return config
