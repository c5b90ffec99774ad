"""Reading folders of image files: one subfolder per class, or files alone."""

import os

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def folder_image_files(path):
    """The image files of a folder, in the order `load_images` reads them.

    A folder of class subfolders yields its files class by class (classes
    and files in name order); a folder of image files alone yields them in
    name order. Hidden subfolders and files of other kinds are skipped.

    Args:
        path: a folder that `load_images` reads.

    Returns:
        `(files, labels)`: the file paths, and their class subfolder names
        (None for a folder of image files alone).

    Example:

    >>> files, labels = folder_image_files("photos")
    >>> [os.path.basename(f) for f in files]
    ['a.png', 'b.jpg']
    """
    class_dirs = sorted(
        d
        for d in os.listdir(path)
        if os.path.isdir(os.path.join(path, d)) and not d.startswith(".")
    )
    if not class_dirs:
        files = _image_files(path)
        if not files:
            raise ValueError(
                "An image folder must hold one subfolder of images per class (or, "
                f"to predict, image files). Received: {path!r} with neither"
            )
        return files, None
    files, labels = [], []
    for name in class_dirs:
        in_class = _image_files(os.path.join(path, name))
        files += in_class
        labels += [name] * len(in_class)
    if not files:
        raise ValueError(
            f"The data is empty. Received: {path!r} with no image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    return files, labels


def read_folder(path):
    """`(images, labels)` of a folder of class subfolders, or `(images, None)`
    of a folder of image files alone (for `predict`)."""
    files, labels = folder_image_files(path)
    return _stack_image_files(files), None if labels is None else np.asarray(labels)


def _image_files(folder):
    return [
        os.path.join(folder, file)
        for file in sorted(os.listdir(folder))
        if file.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, file))
    ]


def _eight_bit_pixels(image, path):
    """A PIL image's pixels as uint8, `(H, W)` grayscale or `(H, W, 3)`.

    16-bit grayscale (modes `I;16*`, and `I` as PIL opens 16-bit PNGs) is
    scaled to 8 bits (`round(v / 257)`); converting it to RGB, as other
    modes are, would clip every value above 255 to white.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(
                f"Could not read the image {path!r}: a {image.mode} image with values "
                f"in [{values.min()}, {values.max()}], outside 16 bits"
            )
        return np.round(values / 257.0).astype(np.uint8)
    if image.mode == "F":
        raise ValueError(
            f"Could not read the image {path!r}: floating-point image files (mode F) "
            "are not supported; save 8- or 16-bit images"
        )
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return np.asarray(image)


def _stack_image_files(files):
    from PIL import Image

    arrays = []
    for file_path in files:
        try:
            with Image.open(file_path) as image:
                arrays.append(_eight_bit_pixels(image, file_path))
        except (OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"Could not read the image {file_path!r}: {error}") from None
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        first = {}
        for a, f in zip(arrays, files, strict=False):
            first.setdefault(a.shape[:2], f)
        examples = ", ".join(f"{h}x{w} ({f})" for (h, w), f in sorted(first.items())[:3])
        raise ValueError(
            "All images in a folder must have the same size; resize them first. "
            f"Received: sizes {examples}"
        )
    if any(a.ndim == 3 for a in arrays):
        # Mixed grayscale and colour files: grayscale ones become RGB.
        arrays = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in arrays]
    return np.stack(arrays)
