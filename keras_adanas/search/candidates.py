"""The candidates of an iteration: their seeds and their models."""

import hashlib

from keras_adanas.nasnet import NASNetA
from keras_adanas.nasnet.ops import DROP_PATH_KEEP_PROB, WEIGHT_DECAY


def candidate_seed(seed, iteration, index):
    """The seed of candidate `index` of `iteration` in a search seeded `seed`.

    A hash of the three, so that no two candidates of a search share a seed
    (nor, through the per-layer offsets `NASNetA` adds, a kernel): an affine
    mix such as `seed * 1009 + iteration * 31 + index` gives the candidates of
    neighbouring iterations overlapping runs of layer seeds.

    Returns:
        An int in `[0, 2**31 - 2**20)`, room left for the layer offsets.
    """
    digest = hashlib.sha256(f"keras_adanas/{seed}/{iteration}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**31 - 2**20)


def build_candidates(
    architectures,
    num_classes,
    image_shape,
    iteration,
    seed,
    dtype=None,
    drop_path_keep_prob=DROP_PATH_KEEP_PROB,
    auxiliary_head=True,
    weight_decay=WEIGHT_DECAY,
):
    """Builds the iteration's untrained candidates, each with a unique name,
    under the dtype policy `dtype` (None: Keras' global policy), with drop
    path to `drop_path_keep_prob` (1: none), the kernels' L2 decay
    `weight_decay`, and with the auxiliary head when `auxiliary_head` (a
    recipe whose auxiliary weight is 0 trains without it: its loss would
    count for nothing)."""
    return [
        NASNetA(
            architecture,
            num_classes=num_classes,
            image_shape=image_shape,
            include_auxiliary_head=bool(auxiliary_head),
            seed=None if seed is None else candidate_seed(seed, iteration, j),
            dtype=dtype,
            drop_path_keep_prob=drop_path_keep_prob,
            weight_decay=weight_decay,
            name=f"iteration_{iteration}_candidate_{j}",
        )
        for j, architecture in enumerate(architectures)
    ]
