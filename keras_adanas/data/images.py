"""Checking images: shapes, dtypes and the range of raw pixel values."""

from collections.abc import Mapping

import numpy as np

# Float images with this share of values in [0, 1] are taken for [0, 1]
# images (`check_pixel_range`).
UNIT_RANGE_SHARE = 0.99


def validate_images(x):
    """`x` as a validated image array: uint8, or float32 in [0, 255], rank 4."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(
            "Images must be a NumPy array (N, H, W, C) or (N, H, W). Received: "
            f"images of type {type(x).__name__}"
        )
    if isinstance(x, Mapping):
        raise TypeError(
            "Images must be a NumPy array (N, H, W, C) or (N, H, W); for images "
            "with labels, pass the pair `(images, labels)`. Received: a "
            f"{type(x).__name__} with keys {preview(list(x), limit=4)}"
        )
    try:
        images = np.asarray(x)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Images must be a NumPy array (N, H, W, C) or (N, H, W). Received: "
            f"images of type {type(x).__name__} ({error})"
        ) from None
    if images.dtype == bool or not (
        np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    ):
        received = "" if isinstance(x, np.ndarray) else f" (from a {type(x).__name__})"
        raise TypeError(
            "Images must hold integer or float pixel values. Received: images "
            f"with dtype={images.dtype}{received}"
        )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            "Images must have rank 4 (N, H, W, C), or rank 3 (N, H, W) for "
            f"grayscale. Received: images.shape={images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"The data is empty. Received: images.shape={images.shape}")
    if min(images.shape[1:]) == 0:
        raise ValueError(f"Images must not be empty. Received: images.shape={images.shape}")
    if np.issubdtype(images.dtype, np.floating):
        if not np.all(np.isfinite(images)):
            bad = int(np.count_nonzero(~np.isfinite(images)))
            raise ValueError(
                f"Images must not contain NaN or infinite pixels. Received: {bad} "
                "NaN or infinite pixel values"
            )
    check_pixel_range(images)
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
    return images


def check_pixel_range(images):
    """Checks that images hold raw pixel values, the one rule of `fit` and
    `predict` alike.

    Raw pixels lie in [0, 255]; the model scales them itself. Integer images
    pass as they are. Float images scaled to [0, 1] would be read as nearly
    black: float images are refused when at least 99% of their values lie in
    [0, 1] and some of those are fractions. Raw pixels converted to float are
    whole numbers, so dark raw images pass (a black image too), and a few
    outlying values (`> 1`) do not hide [0, 1] images.

    Args:
        images: a NumPy array of pixels, NaN-free.

    Raises:
        ValueError: values outside [0, 255], or float images scaled to [0, 1].

    Example:

    >>> check_pixel_range(np.array([[0.0, 1.0], [254.0, 255.0]]))  # raw: passes
    >>> check_pixel_range(np.array([[0.1, 0.5], [0.9, 1.0]]))
    Traceback (most recent call last):
    ValueError: Pixel values must be raw [0, 255] values, ...
    """
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise ValueError(
            "Pixel values must lie in [0, 255] (raw images; the model scales "
            f"them). Received: values in [{low}, {high}]"
        )
    if not np.issubdtype(images.dtype, np.floating):
        return
    in_unit_range = images <= 1.0
    share = float(np.mean(in_unit_range))
    if share >= UNIT_RANGE_SHARE and np.any(images[in_unit_range] % 1.0 != 0.0):
        raise ValueError(
            "Pixel values must be raw [0, 255] values, but "
            f"{share:.1%} of them are in [0, 1], with fractions: multiply the images by "
            "255 (or pass uint8 images). Received: float images with max pixel value "
            f"{high}"
        )


def validate_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"`batch_size` must be an int. Received: batch_size={batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    return int(batch_size)


def preview(values, limit=8):
    values = list(values)
    text = ", ".join(repr(v) for v in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}]"
