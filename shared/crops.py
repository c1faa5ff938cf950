"""Pre-aligned input: derive every crop size from faces already on the 112x112 template.

This is the alignment step's pass-through mode for data such as the LFW crops, which were
aligned with the same 5-point template: the other sizes are resizes/shifts of the 112 crop
(shared/template.py), so no detector runs.
"""
import os
import shutil

from shared.images import CROP_JPEG_QUALITY, load_rgb, save_rgb
from shared.template import derive_from_112


def derive_prealigned(src_dir, names, out_dirs, progress=None):
    """Write out_dirs[crop]/<name> for each name and crop; existing files are kept (resume).

    The 112x112 crop is copied byte for byte; the others are re-encoded (JPEG at
    CROP_JPEG_QUALITY for .jpg names, lossless otherwise). Returns the number of files written."""
    written = 0
    for name in (progress(names) if progress else names):
        targets = [(crop, os.path.join(folder, name)) for crop, folder in sorted(out_dirs.items())]
        todo = [(crop, path) for crop, path in targets if not os.path.isfile(path)]
        if not todo:
            continue
        source = os.path.join(src_dir, name)
        image = load_rgb(source)
        if image.shape[:2] != (112, 112):
            raise ValueError("cannot use '%s' as pre-aligned: it is %dx%d, not a 112x112 template "
                             "crop (run the alignment step instead)" % (source, image.shape[1], image.shape[0]))
        for crop, path in todo:
            folder = os.path.dirname(path)
            if not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
            if crop == "112x112":
                tmp = path + ".tmp"
                shutil.copyfile(source, tmp)
                os.rename(tmp, path)
            else:
                save_rgb(path, derive_from_112(image, crop), quality=CROP_JPEG_QUALITY)
            written += 1
    return written
