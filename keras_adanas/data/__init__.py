"""Input pipeline: loading labelled images and the CIFAR augmentation.

- `sources`: `load_images` from arrays, files, folders, datasets and names;
- `images`, `labels`: checking pixels, encoding labels;
- `pipeline`: `LabeledImages` and its batches (`tf.data`, or
  `keras_adanas.data.batches` without TensorFlow);
- `augmentation`: `CIFARAugmentation`, in TensorFlow and in NumPy.
"""

from keras_adanas.data.augmentation import CIFARAugmentation
from keras_adanas.data.datasets import dataset_read_limit
from keras_adanas.data.files import IMAGE_EXTENSIONS, folder_image_files
from keras_adanas.data.images import UNIT_RANGE_SHARE, check_pixel_range
from keras_adanas.data.pipeline import LabeledImages
from keras_adanas.data.sources import (
    DATA_DIR_ENV,
    DIGITS,
    DIGITS_TEST_SIZE,
    KERAS_DATASETS,
    SPLITS,
    default_data_dir,
    digits_images,
    load_images,
)

__all__ = [
    "CIFARAugmentation",
    "DATA_DIR_ENV",
    "DIGITS",
    "DIGITS_TEST_SIZE",
    "IMAGE_EXTENSIONS",
    "KERAS_DATASETS",
    "LabeledImages",
    "SPLITS",
    "UNIT_RANGE_SHARE",
    "check_pixel_range",
    "dataset_read_limit",
    "default_data_dir",
    "digits_images",
    "folder_image_files",
    "load_images",
]
