"""The NASNet-A CIFAR subnetwork."""

from keras_adanas.nasnet.batch_norm import synchronized_batch_norm
from keras_adanas.nasnet.model import (
    AUX_LOGITS,
    LOGITS,
    TRAINABLE_POLICIES,
    NASNetA,
    minimum_image_size,
    resolve_dtype_policy,
    validate_image_shape,
)
from keras_adanas.nasnet.ops import DropPath, drop_path_layers, set_drop_path_schedule
from keras_adanas.nasnet.statistics import recompute_batch_statistics
from keras_adanas.workarounds import FusedBatchNormalization, PaddingExcludedAveragePooling2D

__all__ = [
    "AUX_LOGITS",
    "LOGITS",
    "DropPath",
    "FusedBatchNormalization",
    "NASNetA",
    "PaddingExcludedAveragePooling2D",
    "TRAINABLE_POLICIES",
    "drop_path_layers",
    "minimum_image_size",
    "recompute_batch_statistics",
    "resolve_dtype_policy",
    "validate_image_shape",
    "set_drop_path_schedule",
    "synchronized_batch_norm",
]
