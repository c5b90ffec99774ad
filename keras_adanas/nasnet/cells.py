"""NASNet-A normal and reduction cells (DESIGN.md section 2)."""

import keras

from keras_adanas.nasnet.ops import (
    apply_factorized_reduction,
    apply_relu_conv_bn,
    apply_separable_stack,
)
from keras_adanas.workarounds import PaddingExcludedAveragePooling2D


def _channels(x):
    return int(x.shape[-1])


def _height(x):
    return int(x.shape[1])


def apply_cell_base(x, prev, factory, filters, name):
    """Returns `(h0, h1)`, the cell's two adjusted inputs.

    `h0 = BN(conv1x1(ReLU(x)))`. `h1` is `prev` adjusted to `h0`: a factorized
    reduction when its spatial size is larger, a ReLU-conv1x1-BN when only its
    channels differ, unchanged otherwise. The first cell has no `prev`; its `h1`
    is the raw `x` (the stem output), left unadjusted.
    """
    h0 = apply_relu_conv_bn(x, factory, filters, name=f"{name}_h0")
    if prev is None:
        return h0, x
    if _height(prev) != _height(x):
        prev = factory.layer(keras.layers.ReLU, name=f"{name}_h1_relu")(prev)
        h1 = apply_factorized_reduction(prev, factory, filters, name=f"{name}_h1_reduce")
    elif _channels(prev) != filters:
        h1 = apply_relu_conv_bn(prev, factory, filters, name=f"{name}_h1")
    else:
        h1 = prev
    return h0, h1


def apply_op(x, op, factory, filters, strides, cell_index, name):
    """One branch of a combination: an op, its channel fix, its drop path.

    Args:
        x: the hidden state the op reads.
        op: one of `"sep3"`, `"sep5"`, `"sep7"`, `"avg3"`, `"max3"`,
            `"identity"`.
        factory: the subnetwork's `LayerFactory`.
        filters: int, the cell's filter count `f`.
        strides: int, 2 for ops on the inputs of a reduction cell, else 1.
        cell_index: int, index of the cell for the drop-path schedule.
        name: str, prefix of the op's layer names.

    Returns:
        A tensor with `filters` channels.
    """
    if op.startswith("sep"):
        kernel = int(op[3:])
        x = apply_separable_stack(x, factory, filters, kernel, strides, name=name)
    elif op in ("avg3", "max3"):
        pool = PaddingExcludedAveragePooling2D if op == "avg3" else keras.layers.MaxPooling2D
        x = factory.layer(pool, 3, strides=strides, padding="same", name=f"{name}_pool")(x)
        if _channels(x) != filters:
            x = apply_relu_conv_bn(x, factory, filters, name=f"{name}_fix", relu=False)
    elif op == "identity":
        if strides > 1 or _channels(x) != filters:
            x = apply_relu_conv_bn(x, factory, filters, name=f"{name}_fix", strides=strides)
        return x  # Identity branches are never dropped.
    else:
        raise ValueError(f"Unknown NASNet-A op. Received: op={op!r}")
    return factory.drop_path(cell_index, name=f"{name}_drop_path")(x)


def _combine(states, left, right, factory, filters, strides, cell_index, name):
    """`state[left[0]] op left[1] + state[right[0]] op right[1]`.

    Only the cell inputs (states 0 and 1) are read with the cell's stride.
    """
    branches = []
    for side, (index, op) in (("left", left), ("right", right)):
        branch_strides = strides if index < 2 else 1
        branches.append(
            apply_op(
                states[index],
                op,
                factory,
                filters,
                branch_strides,
                cell_index,
                name=f"{name}_{side}_{op}",
            )
        )
    return factory.layer(keras.layers.Add, name=f"{name}_add")(branches)


# Each combination: ((state, op), (state, op)); states are [h0, h1, s2, ...].
NORMAL_CELL = (
    ((0, "sep5"), (1, "sep3")),
    ((1, "sep5"), (1, "sep3")),
    ((0, "avg3"), (1, "identity")),
    ((1, "avg3"), (1, "avg3")),
    ((0, "sep3"), (0, "identity")),
)
NORMAL_CELL_OUTPUT = (1, 2, 3, 4, 5, 6)

REDUCTION_CELL = (
    ((0, "sep5"), (1, "sep7")),
    ((0, "max3"), (1, "sep7")),
    ((0, "avg3"), (1, "sep5")),
    ((3, "identity"), (2, "avg3")),
    ((2, "sep3"), (0, "max3")),
)
REDUCTION_CELL_OUTPUT = (3, 4, 5, 6)


def _apply_cell(x, prev, factory, filters, cell_index, name, spec, output, strides):
    h0, h1 = apply_cell_base(x, prev, factory, filters, name=name)
    states = [h0, h1]
    for i, (left, right) in enumerate(spec):
        states.append(
            _combine(
                states,
                left,
                right,
                factory,
                filters,
                strides,
                cell_index,
                name=f"{name}_comb_{i}",
            )
        )
    outputs = [states[i] for i in output]
    if _channels(outputs[0]) != filters:
        # First cell: the raw stem output joins the concat through conv1x1+BN.
        outputs[0] = apply_relu_conv_bn(
            outputs[0], factory, filters, name=f"{name}_h1_out", relu=False
        )
    return factory.layer(keras.layers.Concatenate, name=f"{name}_out")(outputs)


def apply_normal_cell(x, prev, factory, filters, cell_index, name):
    """A NASNet-A normal cell; returns a tensor of `6 * filters` channels.

    Args:
        x: output of the previous cell (or the stem).
        prev: output of the cell before that, or None for the first cell.
        factory: the subnetwork's `LayerFactory`.
        filters: int, `f`.
        cell_index: int, index of the cell counting reduction cells.
        name: str, prefix of the cell's layer names.
    """
    return _apply_cell(
        x,
        prev,
        factory,
        filters,
        cell_index,
        name,
        NORMAL_CELL,
        NORMAL_CELL_OUTPUT,
        strides=1,
    )


def apply_reduction_cell(x, prev, factory, filters, cell_index, name):
    """A NASNet-A reduction cell: stride 2, returns `4 * filters` channels.

    Args as `apply_normal_cell`.
    """
    return _apply_cell(
        x,
        prev,
        factory,
        filters,
        cell_index,
        name,
        REDUCTION_CELL,
        REDUCTION_CELL_OUTPUT,
        strides=2,
    )
