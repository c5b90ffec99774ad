"""keras_adanas: AdaNAS ensembles of NASNet-A subnetworks for Keras."""

from keras_adanas.architecture import Architecture
from keras_adanas.classifier import AdaNASClassifier
from keras_adanas.data import LabeledImages, load_images
from keras_adanas.distillation import Distillation
from keras_adanas.ensemble import Ensemble, MixtureWeights
from keras_adanas.generators import ConstantGenerator, DynamicGenerator, Generator
from keras_adanas.nasnet import DropPath, NASNetA, set_drop_path_schedule
from keras_adanas.search.budget import parse_budget

__version__ = "0.1.0.dev0"

__all__ = [
    "AdaNASClassifier",
    "Architecture",
    "ConstantGenerator",
    "Distillation",
    "DropPath",
    "DynamicGenerator",
    "Ensemble",
    "Generator",
    "LabeledImages",
    "MixtureWeights",
    "NASNetA",
    "load_images",
    "parse_budget",
    "set_drop_path_schedule",
]
