"""keras_adanas: AdaNAS ensembles of NASNet-A subnetworks for Keras."""

from keras_adanas.architecture import Architecture
from keras_adanas.nasnet import DropPath, NASNetA, set_drop_path_schedule

__version__ = "0.1.0.dev0"

__all__ = [
    "Architecture",
    "DropPath",
    "NASNetA",
    "set_drop_path_schedule",
]
