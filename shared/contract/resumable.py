"""The resumable chunked job that embed and align share.

A job's outputs are complete when its meta file (written last) carries the job's fingerprint;
a rerun with the same fingerprint does nothing. Work is saved chunk by chunk, atomically,
in a hidden `.<prefix>.partial/` folder next to the outputs: an interrupted run resumes
where it stopped, and a run with other arguments starts afresh. Python-2.7 compatible.
"""
from __future__ import absolute_import, division, print_function

import os
import shutil
import time

import numpy as np

from shared.progress import bar
from shared.schema import EXIT_BACKEND, ContractError
from shared.storage import read_json, save_npz, write_json


class ChunkFormat(object):
    """How a chunk's result is stored: file suffix, save(path, result), load(path)."""

    def __init__(self, suffix, save, load):
        self.suffix, self.save, self.load = suffix, save, load


NPZ = ChunkFormat(".npz", save_npz, np.load)  # a dict of arrays per chunk
JSON = ChunkFormat(".json", write_json, read_json)  # a JSON value per chunk


def up_to_date(meta_path, fingerprint):
    return os.path.isfile(meta_path) and read_json(meta_path).get("fingerprint") == fingerprint


def resume_folder(out, prefix, fingerprint):
    """The hidden folder where a run keeps its finished chunks: kept when an earlier run had
    the same fingerprint (so it resumes), emptied otherwise."""
    partial = os.path.join(out, "." + prefix + ".partial")
    marker = os.path.join(partial, "fingerprint.json")
    if os.path.isdir(partial) and (not os.path.isfile(marker) or read_json(marker) != fingerprint):
        shutil.rmtree(partial)  # left by a run with other arguments: not resumable
    if not os.path.isdir(partial):
        os.makedirs(partial)
        write_json(marker, fingerprint)
    return partial


def chunk_bounds(total, step):
    """[(lo, hi)] rows of consecutive chunks of `step` rows (the last may be shorter)."""
    return [(lo, min(lo + step, total)) for lo in range(0, total, step)]


def timed_load(load, what):
    """(load(), seconds it took); a failure that is not a ContractError already becomes
    EXIT_BACKEND, 'cannot load <what>: <error>'."""
    started = time.time()
    try:
        loaded = load()
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(EXIT_BACKEND, "cannot load %s: %s: %s" % (what, type(exc).__name__, exc))
    return loaded, time.time() - started


def run_chunks(partial, bounds, chunk_format, desc, compute, tags=None):
    """Compute compute(lo, hi, progress) for every chunk of rows not yet saved in `partial`,
    save it, then load all chunks in order. Returns (results, rows computed now, seconds); `compute`
    advances the progress (shared/progress.py) by one per row it does. `tags` (a string per
    chunk, e.g. its images' content hash) name the chunk's file, so a chunk whose input changed
    since it was saved is computed again."""
    progress = bar(bounds[-1][1] if bounds else 0, desc, unit="img")
    started, computed = time.time(), 0
    paths = [os.path.join(partial, "chunk-%08d%s%s" % (lo, "-" + tags[i] if tags else "", chunk_format.suffix))
             for i, (lo, _) in enumerate(bounds)]
    for (lo, hi), path in zip(bounds, paths):
        if os.path.isfile(path):
            progress.update(hi - lo)
            continue
        chunk_format.save(path, compute(lo, hi, progress))
        computed += hi - lo
    progress.close()
    seconds = time.time() - started
    return [chunk_format.load(path) for path in paths], computed, seconds


def finish(meta_path, meta, partial):
    """Write the meta (which marks the outputs complete), then drop the resume folder."""
    write_json(meta_path, meta)
    shutil.rmtree(partial)
