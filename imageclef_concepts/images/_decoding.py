"""One image file decoded: read, converted to RGB and resized, with Pillow and NumPy only.

:func:`decode_image` reads one file (a local path or an ``fsspec`` URL) as
``image_size x image_size x 3`` uint8 pixels; :func:`check_image_file`
finds what is wrong with a file from its header alone; :func:`resized` is
the one resize of the library, for files and arrays alike. The image
sources fed to the networks (``_images``) are built on these.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import joblib
import numpy as np
from PIL import Image, ImageOps

from ..files._atomic import NotARegularFileError, open_regular_file
from ..files._sizes import check_allocation, setting

if TYPE_CHECKING:  # names for annotations only
    from numpy.typing import NDArray

    from .._typing import PathLike

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
# The raster formats images are read in. Pillow can open more (EPS and PS among
# them, which it hands to Ghostscript): a file of any other format is refused.
RASTER_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# A JPEG this many times larger than the target is decoded at a reduced DCT
# scale (Pillow's draft mode): much faster, and the resize smooths it anyway.
_DRAFT_FACTOR = 2


# Decoding an image into a batch while the one before is written to a store: Pillow's RGB
# (4 bytes a pixel) and NumPy's (3), the batch it goes into (3) and the rows queued for the
# store's writer (3). prepare_images, one image at a time at 6,000 px, peaks at 12.1 bytes a
# pixel here; counting 7 let image_size=46341 pass on a 23.5 GiB machine, then be killed.
_DECODE_BYTES_PER_PIXEL = 13


def check_image_size(image_size, n_images=None, name="image_size"):
    """A whole number of pixels (not a bool), one image of which (and ``n_images`` together)
    fits in memory: refused by name before any work otherwise (:func:`check_allocation`).
    Returns it as a Python int: NumPy's small integers wrap in a size's arithmetic
    (``np.uint8(8)`` pixels of a chunk's bytes)."""
    from ..files._numbers import check_whole_number  # scikit-learn's: not at --help

    check_whole_number(image_size, name, unit=" of pixels")
    check_allocation(_DECODE_BYTES_PER_PIXEL * int(image_size)**2, setting(name, image_size),
                     "decoding one image at that size", f"choose a smaller {name}")
    if n_images is not None and n_images > 1:
        check_allocation(3 * int(image_size)**2 * int(n_images), setting(name, image_size),
                         f"holding {n_images} images at that size together",
                         f"choose a smaller {name}, or take fewer images at a time")
    return int(image_size)


class ImageDecodeError(ValueError):
    """An image file that is missing, empty, truncated or not an image.

    Examples
    --------
    >>> from imageclef_concepts import ImageDecodeError, decode_image
    >>> try:
    ...     decode_image("no/such/image.png", 32)
    ... except ImageDecodeError as error:
    ...     print(error)
    no/such/image.png: file not found
    """


def decode_image(path: PathLike, image_size: int, resample: str = "bilinear") -> NDArray[np.uint8]:
    """Read one image file as RGB uint8 pixels of ``image_size x image_size``.

    Every mode Pillow reads becomes RGB: palette, grey and alpha modes are
    converted; 16-bit and 32-bit grey (``I;16``, ``I``, ``F``) are scaled from
    the image's own intensity range to 0-255 (not clipped). The EXIF
    orientation is applied. Large JPEGs are decoded in draft mode.

    Parameters
    ----------
    path : str or path-like
    image_size : int
    resample : {"nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"}

    Returns
    -------
    ndarray of uint8, shape (image_size, image_size, 3)

    Raises
    ------
    ImageDecodeError
        Naming the file: missing, empty, truncated, not an image (only
        :data:`RASTER_FORMATS` are read), a float image with NaN or
        infinite pixels, or larger than Pillow's
        decompression-bomb limit. Nothing else: whatever a damaged file makes
        Pillow raise is reported as this error.
    ValueError, TypeError
        Naming ``image_size``, before the file is read: not a whole number of
        pixels, or an image at that size more than this machine's memory holds.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from imageclef_concepts import decode_image
    >>> path = os.path.join(tempfile.mkdtemp(), "xray.png")
    >>> Image.fromarray(np.zeros((80, 60), dtype=np.uint8)).save(path)
    >>> decode_image(path, 32).shape
    (32, 32, 3)
    """
    image_size = check_image_size(image_size)  # before the file is read: no memory, no size
    try:
        with _opened(path) as source:
            if _size(path, source) == 0:  # else Pillow names the file object, not the file
                raise ImageDecodeError("the file is empty (0 bytes)")
            with Image.open(source, formats=RASTER_FORMATS) as image:
                if image.format == "JPEG" and min(image.size) >= _DRAFT_FACTOR * image_size:
                    image.draft("RGB", (image_size, image_size))
                ImageOps.exif_transpose(image, in_place=True)
                rgb = _as_rgb(image)
    except ImageDecodeError as error:
        raise ImageDecodeError(f"{path}: {error}") from None
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: file not found") from None
    except NotARegularFileError as error:
        raise ImageDecodeError(str(error)) from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"{path}: refused by Pillow's decompression-bomb guard "
                               f"({error})") from None
    except Image.UnidentifiedImageError:  # its message names a file object, not the file
        raise ImageDecodeError(f"{path}: not an image file in a format read "
                               f"({', '.join(RASTER_FORMATS)})") from None
    except Exception as error:  # a damaged file can make Pillow raise almost anything
        raise ImageDecodeError(f"{path}: cannot decode the image "
                               f"({type(error).__name__}: {error})") from None
    return resized(rgb, image_size, resample)


def resized(image, image_size, resample="bilinear"):
    """An RGB image (Pillow image or uint8 array) as ``image_size`` square uint8 pixels.

    The one resize of the library, for files and arrays alike.
    """
    if isinstance(image, np.ndarray):
        if image.shape[:2] == (image_size, image_size):
            return image
        image = Image.fromarray(image)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), resample=RESAMPLING[resample])
    return np.asarray(image, dtype=np.uint8)


def _as_rgb(image):
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        bad = int(values.size - np.isfinite(values).sum())
        if bad:  # the intensity range would be NaN or infinite: a blank image
            raise ImageDecodeError(f"{bad} pixel(s) are NaN or infinite (a float image with "
                                   "no usable intensity range)")
        low, high = values.min(), values.max()
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = ((values - low) * scale).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # palette transparency, without Pillow's warning
    return image.convert("RGB")


MAX_DECODING_THREADS = 32
"""The most threads :func:`decoding_threads` gives by default, however many cores."""


def usable_cores():
    """The cores this process may use: its CPU set (``os.sched_getaffinity``) and a
    container's or a cluster job's CPU quota (cgroups), as joblib reads them; the machine's
    count where the system tells neither."""
    return max(1, joblib.cpu_count())


def decoding_threads(n_jobs=None):
    """Threads that decode image files: ``n_jobs``, or None for one per core available.

    The cores available are :func:`usable_cores`, at most :data:`MAX_DECODING_THREADS`: one
    image decodes in one thread, so a batch's images decode on every core at once.
    """
    if n_jobs is not None:
        return int(n_jobs)
    return min(usable_cores(), MAX_DECODING_THREADS)


def is_url(path):
    """True for an ``fsspec`` URL such as ``s3://bucket/x.jpg`` or ``memory://x.png``."""
    return isinstance(path, str) and "://" in path


def _opened(path):
    """A binary file object for a local path or an fsspec URL (object storage, memory...)."""
    if not is_url(path):
        return open_regular_file(path, "image file")  # a pipe or a device would block
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"{path} is a URL: reading images from object storage needs fsspec "
                          "(pip install 'imageclef_concepts[fsspec]').") from None
    return fsspec.open(path, "rb").open()


def _size(path, handle):
    if not is_url(path):
        return os.fstat(handle.fileno()).st_size
    return handle.size if hasattr(handle, "size") else handle.seek(0, os.SEEK_END)


def check_image_file(path):
    """Problem with an image file found without decoding it, or None.

    Catches missing, empty and non-image files and decompression bombs by
    reading the header only; a truncated file is found when it is decoded.
    """
    try:
        with _opened(path) as source:
            if _size(path, source) == 0:
                return f"{path}: empty file"
            with Image.open(source, formats=RASTER_FORMATS):
                return None
    except FileNotFoundError:
        return f"{path}: file not found"
    except NotARegularFileError as error:
        return str(error)
    except Image.DecompressionBombError as error:
        return f"{path}: refused by Pillow's decompression-bomb guard ({error})"
    except Exception as error:  # anything a damaged header makes Pillow raise
        return f"{path}: not a readable image ({type(error).__name__}: {error})"


__all__ = ["RASTER_FORMATS", "RESAMPLING", "ImageDecodeError", "check_image_file",
           "decoding_threads",
           "decode_image", "resized"]
