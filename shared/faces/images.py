"""Robust image loading: any JPEG/PNG/PGM/BMP as RGB uint8, EXIF orientation applied."""
from __future__ import absolute_import, division, print_function

import os

import numpy as np
from PIL import Image, ImageOps

from shared.schema import EXIT_BAD_IMAGE, ContractError
from shared.storage import atomic_path

CROP_JPEG_QUALITY = 98  # the aligned crops' JPEG quality (the original's), wherever they are written
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
WRITABLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm")  # what save_rgb writes


class ImageError(ContractError):
    """An image that cannot be used; the message names the file and the problem. An
    entrypoint exits with EXIT_BAD_IMAGE on it."""

    def __init__(self, path, problem):
        ContractError.__init__(self, EXIT_BAD_IMAGE, "cannot read image '%s': %s" % (path, problem))
        self.path = path
        self.problem = problem


def _to_uint8_rgb(img):
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/32-bit greyscale: rescale the actual range of the format, not of the image,
        # so two exposures of one scene keep their relative brightness.
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.stack([arr] * 3, axis=-1)
    if img.mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    # L, LA, P, RGBA, CMYK, YCbCr, 1...: Pillow's conversion drops alpha like cv2.imread does.
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_rgb(path):
    """Return an HxWx3 uint8 RGB array; raise ImageError naming the file otherwise."""
    if not os.path.isfile(path):
        raise ImageError(path, "no such file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_uint8_rgb(img)
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageError(path, "%s: %s" % (type(exc).__name__, exc))
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(path, "empty image (shape %s)" % (arr.shape,))
    return np.ascontiguousarray(arr)


def load_rgb_at(path, size):
    """(load_rgb(path) resized (bicubic) to size = (width, height), whether it was resized)."""
    image = load_rgb(path)
    if (image.shape[1], image.shape[0]) == size:
        return image, False
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC)), True


_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".pgm": "PPM", ".ppm": "PPM"}


def save_rgb(path, rgb, quality=95):
    """Atomically write an RGB array in the format its extension names (JPEG at `quality`).

    Pillow's encoders are deterministic, so equal arrays give byte-identical files.
    """
    fmt = _FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError("cannot write '%s': unknown image extension" % path)
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB")
    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            img.save(tmp, fmt, quality=quality)
        else:
            img.save(tmp, fmt)


def list_images(root):
    """Sorted relative paths of every image file under `root`."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return found
