"""Pre-aligned input: derive every crop size from faces already on the 112x112 template.

This is the alignment step's pass-through mode for data such as the LFW crops, which were
aligned with the same 5-point template: the other sizes are resizes/shifts of the 112 crop
(shared/template.py), so no detector runs.
"""
import hashlib
import os
import shutil

from shared.images import CROP_JPEG_QUALITY, load_rgb, save_rgb
from shared.storage import read_json, write_json
from shared.template import derive_from_112


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def derive_prealigned(src_dir, names, out_dirs, progress=None, manifest=None):
    """Write out_dirs[crop]/<name> for each name and crop; existing files are kept (resume)
    where `manifest` (a JSON file of each source's sha256, rewritten here) shows their source
    unchanged, so an image replaced under the same name is cropped again.

    The 112x112 crop is copied byte for byte; the others are re-encoded (JPEG at
    CROP_JPEG_QUALITY for .jpg names, lossless otherwise). Returns the number of files written."""
    written, digests = 0, {}
    known = read_json(manifest) if manifest and os.path.isfile(manifest) else {}
    for name in (progress(names) if progress else names):
        source = os.path.join(src_dir, name)
        digests[name] = _sha256(source) if manifest and os.path.isfile(source) else None
        targets = [(crop, os.path.join(folder, name)) for crop, folder in sorted(out_dirs.items())]
        todo = [(crop, path) for crop, path in targets
                if not os.path.isfile(path) or (manifest and known.get(name) != digests[name])]
        if not todo:
            continue
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
    if manifest:
        write_json(manifest, digests)
    return written
