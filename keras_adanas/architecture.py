"""`Architecture`: the N@F value type naming a NASNet-A CIFAR subnetwork."""

import dataclasses
import math
import re

FILTER_MULTIPLE = 24
"""F must be a multiple of 24: F = 24 * f0 (6 states x 4 f0 channels at 8x8)."""

AUXILIARY_HEAD_POOL = (5, 3)
"""Pool size and stride of the auxiliary head's average pooling (VALID)."""

_ARCHITECTURE_PATTERN = re.compile(r"^\s*(-?\d+)\s*@\s*(-?\d+)\s*$")


@dataclasses.dataclass(frozen=True, order=True)
class Architecture:
    """A NASNet-A CIFAR subnetwork size, written `N@F`.

    `N` (`depth`) is the number of normal cells per stack (there are three
    stacks, so `3 * N` normal cells and two reduction cells). `F` (`filters`)
    is the number of filters of the penultimate layer, `24 * f0`, where `f0` is
    the filter count of the first stack. The paper's NASNet-A 6@768 has 18
    normal cells and `f0 = 32`.

    Args:
        depth: int, `N >= 1`.
        filters: int, a positive multiple of 24.

    Example:

    >>> arch = Architecture.parse("6@768")
    >>> str(arch.deeper()), str(arch.wider())
    ('7@768', '6@1008')
    >>> arch.count_params(num_classes=10)
    3346538
    """

    depth: int
    filters: int

    def __post_init__(self):
        for name in ("depth", "filters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"`{name}` must be an int. Received: {name}={value!r} "
                    f"of type {type(value).__name__}"
                )
        if self.depth < 1:
            raise ValueError(
                f"`depth` (N, normal cells per stack) must be >= 1. Received: depth={self.depth}"
            )
        if self.filters <= 0 or self.filters % FILTER_MULTIPLE:
            raise ValueError(
                f"`filters` (F) must be a positive multiple of {FILTER_MULTIPLE}. "
                f"Received: filters={self.filters}"
            )

    @classmethod
    def parse(cls, value):
        """Returns the `Architecture` that `value` names.

        Args:
            value: an `Architecture`, a string `"N@F"`, or a pair `(N, F)`.

        Returns:
            An `Architecture`.
        """
        if isinstance(value, Architecture):
            return value
        if isinstance(value, str):
            match = _ARCHITECTURE_PATTERN.match(value)
            if not match:
                raise ValueError(
                    "An architecture string must look like 'N@F', for example "
                    f"'6@768'. Received: architecture={value!r}"
                )
            return cls(int(match.group(1)), int(match.group(2)))
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return cls(*value)
        raise TypeError(
            "An architecture must be an `Architecture`, an 'N@F' string or a "
            f"(depth, filters) pair. Received: architecture={value!r} of type "
            f"{type(value).__name__}"
        )

    def __str__(self):
        return f"{self.depth}@{self.filters}"

    @property
    def stem_filters(self):
        """Filters of the first stack, `f0 = F / 24`."""
        return self.filters // FILTER_MULTIPLE

    @property
    def num_cells(self):
        """Number of normal cells, `3 * N`."""
        return 3 * self.depth

    def deeper(self, step=1):
        """Returns the architecture with `step` more normal cells per stack."""
        return Architecture(self.depth + int(step), self.filters)

    def wider(self, step=240):
        """Returns the architecture with `step` more penultimate filters."""
        return Architecture(self.depth, self.filters + int(step))

    def count_params(
        self,
        num_classes,
        *,
        image_shape=(32, 32, 3),
        include_auxiliary_head=False,
    ):
        """Returns the exact trainable-parameter count, without building.

        The count is shape arithmetic over the cells of DESIGN.md section 2; it
        equals `NASNetA(...).count_params()` restricted to trainable weights.

        Args:
            num_classes: int, number of output classes.
            image_shape: `(height, width, channels)` of the input images. Only
                the channel count matters, and the spatial size only for the
                auxiliary head.
            include_auxiliary_head: bool, whether to count the training-only
                auxiliary head.

        Returns:
            An int.
        """
        height, width, channels = (int(d) for d in image_shape)
        f0 = self.stem_filters
        stem_channels = 3 * f0
        total = 3 * 3 * channels * stem_channels + _bn(stem_channels)

        # Cell outputs as (channels, stack index) pairs; the stem is at stack 0.
        prev, x = None, (stem_channels, 0)
        for stack in range(3):
            f = f0 * 2**stack
            if stack > 0:
                total += _reduction_cell_params(x, prev, f, stack)
                prev, x = x, (4 * f, stack)
            for _ in range(self.depth):
                total += _normal_cell_params(x, prev, f, stack)
                prev, x = x, (6 * f, stack)
        total += self.filters * num_classes + num_classes

        if include_auxiliary_head:
            aux_in = 6 * 2 * f0
            size = [_auxiliary_pool_size(math.ceil(d / 2)) for d in (height, width)]
            total += aux_in * 128 + _bn(128)
            total += size[0] * size[1] * 128 * 768 + _bn(768)
            total += 768 * num_classes + num_classes
        return int(total)


def _auxiliary_pool_size(size):
    pool, stride = AUXILIARY_HEAD_POOL
    return (size - pool) // stride + 1


def _bn(channels):
    return 2 * channels


def _conv_bn(in_channels, filters):
    return in_channels * filters + _bn(filters)


def _separable_stack(kernel, in_channels, filters):
    first = kernel * kernel * in_channels + in_channels * filters + _bn(filters)
    second = kernel * kernel * filters + filters * filters + _bn(filters)
    return first + second


def _factorized_reduction(in_channels, filters):
    half = filters // 2
    return in_channels * half + in_channels * (filters - half) + _bn(filters)


def _cell_base(x, prev, filters, stack):
    """Params of h0 and h1; returns (params, channels of h1)."""
    params = _conv_bn(x[0], filters)
    if prev is None:  # First cell: h1 is the raw stem output.
        return params, x[0]
    if prev[1] != stack:
        return params + _factorized_reduction(prev[0], filters), filters
    if prev[0] != filters:
        return params + _conv_bn(prev[0], filters), filters
    return params, filters


def _normal_cell_params(x, prev, f, stack):
    params, h1 = _cell_base(x, prev, f, stack)
    adjust = _conv_bn(h1, f) if h1 != f else 0
    params += _separable_stack(5, f, f) + _separable_stack(3, h1, f)  # s2
    params += _separable_stack(5, h1, f) + _separable_stack(3, h1, f)  # s3
    params += adjust  # s4: avg3(h0) + identity(h1)
    params += 2 * adjust  # s5: avg3(h1) + avg3(h1)
    params += _separable_stack(3, f, f)  # s6: sep3(h0) + h0
    params += adjust  # h1 concatenated into the output
    return params


def _reduction_cell_params(x, prev, f, stack):
    # The reduction cell of stack `stack` reads inputs from the stack before.
    params, _ = _cell_base(x, prev, f, stack - 1)
    params += 2 * _separable_stack(7, f, f)
    params += 2 * _separable_stack(5, f, f)
    params += _separable_stack(3, f, f)
    return params
