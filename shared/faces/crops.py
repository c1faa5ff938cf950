"""Pre-aligned input: derive every crop size from faces already on the 112x112 template.

This is the alignment step's pass-through mode for data such as the LFW crops, which were
aligned with the same 5-point template: the other sizes are resizes/shifts of the 112 crop
(shared/faces/template.py), so no detector runs.
"""
import hashlib
import os
import shutil

import numpy as np

from shared.faces.images import CROP_JPEG_QUALITY, load_rgb, save_rgb
from shared.faces.template import derive_from_112, rewarp
from shared.storage import read_json, write_json


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


ROTATED = " rot180"  # a manifest entry's suffix: the crops were derived from the source turned 180 degrees
WARPED = " warp "  # another suffix, then the matrix that moved the source onto the template


def load_template_crop(path):
    """The RGB array of a crop already on the 112x112 template; a clear error naming the file
    otherwise (pre-aligned input that was never aligned)."""
    image = load_rgb(path)
    if image.shape[:2] != (112, 112):
        raise ValueError("cannot use '%s' as pre-aligned: it is %dx%d, not a 112x112 template "
                         "crop (run the alignment step instead)" % (path, image.shape[1], image.shape[0]))
    return image


def _derive_one(source, todo, rotate, warp):
    """The (crop, path) files of `todo` from one template crop; returns how many were written."""
    image = load_template_crop(source)
    if rotate:
        image = np.ascontiguousarray(image[::-1, ::-1])
    if warp is not None:
        image = rewarp(image, warp)
    for crop, path in todo:
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
        if crop == "112x112" and not rotate and warp is None:
            tmp = path + ".tmp"
            shutil.copyfile(source, tmp)
            os.rename(tmp, path)
        else:
            save_rgb(path, derive_from_112(image, crop), quality=CROP_JPEG_QUALITY)
    return len(todo)


def _vouched(states, known, waiting, broken):
    """The manifest after a run: each name's new state, the old one for names still waiting,
    none for a name whose crops were left half rewritten."""
    kept = dict((n, known[n]) for n in waiting if n in known)
    kept.update((n, states[n]) for n in states if n not in waiting and n not in broken)
    return kept


def derive_prealigned(src_dir, names, out_dirs, progress=None, manifest=None, rotate=(), warp=None):
    """Write out_dirs[crop]/<name> for each name and crop; existing files are kept (resume)
    where `manifest` (a JSON file of each source's sha256 + ROTATED if turned, rewritten here)
    shows their source unchanged, so an image replaced under the same name is cropped again.

    The names in `rotate` are turned 180 degrees before any crop is derived (upside-down input,
    shared/faces/orientation.py); the manifest records it, so a name that enters or leaves `rotate`
    is cropped again and no crop of the other orientation stays behind. `warp` (a 2x3 matrix,
    shared/faces/template.py correction) moves every crop, after any turn, onto the template; the
    manifest records it too.

    The 112x112 crop is copied byte for byte unless turned or moved; the others, and those 112
    crops, are re-encoded (JPEG at CROP_JPEG_QUALITY for .jpg names, lossless otherwise). Returns the
    number of files written."""
    states, rotate, plan = {}, set(rotate), []
    moved = "" if warp is None else WARPED + ",".join("%.4f" % v for v in np.ravel(warp))
    known = read_json(manifest) if manifest and os.path.isfile(manifest) else {}
    for name in names:
        source = os.path.join(src_dir, name)
        digest = _sha256(source) if manifest and os.path.isfile(source) else None
        states[name] = digest and digest + (ROTATED if name in rotate else "") + moved
        targets = [(crop, os.path.join(folder, name)) for crop, folder in sorted(out_dirs.items())]
        todo = [(crop, path) for crop, path in targets
                if not os.path.isfile(path) or (manifest and known.get(name) != states[name])]
        if todo:
            plan.append((name, source, todo))
    if manifest and plan:  # until they are rewritten, the manifest vouches for none of these crops
        write_json(manifest, dict((n, v) for n, v in known.items() if n not in set(p[0] for p in plan)))
    written, started, done = 0, set(), set()
    try:
        for name, source, todo in (progress(plan) if progress else plan):
            started.add(name)
            written += _derive_one(source, todo, name in rotate, warp)
            done.add(name)
    finally:  # stopped or finished: the rewritten crops and the never-touched ones are vouched for
        if manifest:
            write_json(manifest, _vouched(states, known, waiting=set(p[0] for p in plan) - started,
                                          broken=started - done))
    return written
