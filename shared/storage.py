"""Atomic file writes and weight hashing.

Everything the pipeline writes goes to a temporary name in the target folder first and is
renamed into place, so a crash or a bad input never leaves a half-written file behind.
"""
from __future__ import absolute_import, division, print_function

import errno
import hashlib
import io
import json
import os
import tempfile
from contextlib import contextmanager

import numpy as np


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; rename it onto `path` only on success."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.rename(tmp, path)  # atomic on POSIX; os.replace does not exist on Python 2
    except EnvironmentError as exc:
        if getattr(exc, "filename", None) not in (None, tmp):
            raise
        raise _named(exc, path, folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _named(exc, path, folder):
    """An OS error without a file (numpy's short write: 'N requested and M written') as one that
    names the file being written, and where it may be the disk, the room left on it."""
    reason = exc.strerror or str(exc)
    if exc.errno in (None, errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        room = os.statvfs(folder)
        reason = "%s; %d bytes free on its file system" % (reason, room.f_bavail * room.f_frsize)
    return IOError(exc.errno, reason, path)


def save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_npz(path, arrays):
    """A dict of arrays as an .npz, zipped in memory first: on a full disk only the plain write
    fails, naming the file (a zip file failing half-way prints its traceback when collected)."""
    packed = io.BytesIO()
    np.savez(packed, **arrays)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(packed.getvalue())


def write_text(path, text):
    with atomic_path(path) as tmp:
        with io.open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with io.open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_file(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def stable_seed(*parts):
    """A 32-bit seed derived from any strings/numbers, the same on every platform and run."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int(hashlib.sha256(text).hexdigest()[:8], 16)
