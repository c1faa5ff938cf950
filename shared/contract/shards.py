"""Sharded embedding: parallel worker processes, and merging shards into the unsharded split.

Shards concatenate in order to exactly the unsharded arrays (shared/schema.py shard_bounds).
Python-2.7 compatible.
"""
from __future__ import absolute_import, division, print_function

import ctypes
import functools
import glob
import io
import os
import shutil
import signal
import subprocess
import sys

import numpy as np

from shared.schema import EXIT_USAGE, ContractError, clear_outputs, output_files, output_prefix
from shared.storage import read_json, save_npy, write_json, write_text

_PRCTL = []  # libc's prctl, once found


def _without_workers(argv):
    """The command-line arguments less --workers N / --workers=N."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--workers":
            skip = True
        elif not item.startswith("--workers="):
            kept.append(item)
    return kept


def _prctl():
    """libc's prctl, looked up once per process; None where there is none (not Linux)."""
    if not _PRCTL:
        try:
            _PRCTL.append(ctypes.CDLL(None).prctl)
        except (OSError, AttributeError):
            _PRCTL.append(None)
    return _PRCTL[0]


def set_death_signal(sig):
    """The kernel sends this process `sig` when the thread that started it dies, even by kill -9."""
    if _prctl() is not None:
        _prctl()(1, sig)  # PR_SET_PDEATHSIG


def die_with_parent(sig=signal.SIGKILL):
    """A preexec_fn (or a process pool's initializer; it pickles) that makes a child die with its
    parent. prctl is looked up now, in the parent: between fork and exec the child only calls it."""
    _prctl()
    return functools.partial(set_death_signal, sig)


def drop_shard_partials(out, split):
    """Remove what sharded runs of `split` left (an interrupted --workers run's resume folders,
    lock files and shard files): the unsharded split is now complete, so none of it is used again."""
    for pattern in (".%s.shard-*-of-*.*", "%s.shard-*-of-*"):
        for path in glob.glob(os.path.join(out, pattern % split)):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def run_workers(args, fingerprint):
    """Embed the list as args.workers shards in parallel child processes (this program again,
    with --shard I/N for --workers N), then merge them."""
    argv = _without_workers(args.argv)
    children = [subprocess.Popen([sys.executable, os.path.abspath(sys.argv[0])] + argv +
                                 ["--shard", "%d/%d" % (i, args.workers)], preexec_fn=die_with_parent())
                for i in range(args.workers)]
    codes = [child.wait() for child in children]
    failed = [code for code in codes if code != 0]
    if failed:
        raise ContractError(failed[0], "%d of %d worker processes failed (exit codes %s)"
                            % (len(failed), len(codes), codes))
    merge_shards(args.out, args.split, args.workers, fingerprint)


def _merged_meta(metas, files, fingerprint):
    meta = dict(metas[0])
    meta["shard"] = None
    meta["merged_from"] = len(metas)
    meta["files"] = dict((key, os.path.basename(files[key])) for key in metas[0]["files"])
    meta["counts"] = dict(meta["counts"], images=sum(m["counts"]["images"] for m in metas),
                          rows=[0, metas[-1]["counts"]["rows"][1]],
                          resized=sum(m["counts"]["resized"] for m in metas))
    meta["fingerprint"] = fingerprint
    meta["timing"] = dict(meta["timing"], embed_s=max(m["timing"]["embed_s"] for m in metas),
                          images_computed=sum(m["timing"]["images_computed"] for m in metas),
                          views_per_s=round(sum(m["timing"]["views_per_s"] for m in metas), 2))
    return meta


def merge_shards(out, split, count, fingerprint=None):
    """Concatenate the outputs of shards 0..count-1 into the unsharded files of `split`.
    `fingerprint` (an unsharded run's) lets a later run see the merged split as up to date."""
    shard_files = [output_files(out, output_prefix(split, (i, count))) for i in range(count)]
    metas = []
    for index, sf in enumerate(shard_files):
        if not os.path.isfile(sf["meta"]):
            raise ContractError(EXIT_USAGE, "shard %d/%d of '%s' is not finished (%s missing)"
                                % (index, count, split, sf["meta"]))
        metas.append(read_json(sf["meta"]))
    files = output_files(out, split)
    clear_outputs(files, metas[0]["files"])
    for key in metas[0]["files"]:
        if key != "index":
            save_npy(files[key], np.concatenate([np.load(sf[key]) for sf in shard_files]))
    rows = []
    for sf in shard_files:
        with io.open(sf["index"], encoding="utf-8") as f:
            rows.extend(f.read().splitlines()[1:])
    write_text(files["index"], "row,image\n" + "".join(row + "\n" for row in rows))
    write_json(files["meta"], _merged_meta(metas, files, fingerprint))
    for sf in shard_files:
        for path in sf.values():
            if os.path.isfile(path):
                os.remove(path)
    drop_shard_partials(out, split)
    return files
