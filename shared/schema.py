"""What the services' outputs look like and how they fail: names, codes, shards (what inputs
they accept: shared/contract/validate.py).

An embed split S (or S.shard-I-of-N when sharded) is, in the output folder:
    S.npy        float32 N x D, row i = line i of the list
    S_flip.npy   float32 N x D, embeddings of the mirrored images      (--flip)
    S_aug.npy    float32 N x A x D, A augmented copies per image        (--augment A)
    S_index.csv  row,image
    S_meta.json  written last, so its presence means the split is complete; its `files`
                 entry lists which of the above the split has.
Exit codes of every entrypoint: 0 done (or already up to date), 2 bad arguments or list,
3 unreadable or missing image, 4 missing or mismatched weights, 5 the framework failed.

Pure Python + NumPy, and Python-2.7 compatible: every service imports it, the Caffe one too.
"""
from __future__ import absolute_import, division, print_function

import hashlib
import io
import os
import re
import sys

import numpy as np

from shared.storage import read_json

EXIT_OK, EXIT_USAGE, EXIT_BAD_IMAGE, EXIT_WEIGHTS, EXIT_BACKEND = 0, 2, 3, 4, 5
CONTRACT_VERSION = 1
_TRACE = re.compile(r"(Traceback \(most recent call last\):|Stack trace:)\n(?:[ \t][^\n]*(?:\n|$)|\n)*")
UNKNOWN_LABEL = 1000  # the label of a face that belongs to nobody known
_SUFFIXES = {"embeddings": ".npy", "flip": "_flip.npy", "augment": "_aug.npy",
             "index": "_index.csv", "meta": "_meta.json"}


class ContractError(Exception):
    """A failure the entrypoint reports as one line, exiting with `code`."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


def describe(exc):
    """One line for an unforeseen exception: its class and message, or the OS error that
    caused it (a full disk is often hidden behind a later error such as 'seek of closed file')."""
    cause = exc
    while cause is not None and not (isinstance(cause, EnvironmentError) and cause.errno):
        cause = getattr(cause, "__cause__", None) or getattr(cause, "__context__", None)
    found = cause if cause is not None else exc
    if isinstance(found, EnvironmentError) and found.filename and found.strerror:  # the file and the reason
        return one_line("%s: %s: %s" % (type(found).__name__, found.filename, found.strerror))
    return one_line("%s: %s" % (type(found).__name__, found))


def one_line(message):
    """`message` on one line: a traceback a framework put in it (Python's or MXNet's 'Traceback
    (most recent call last):', 'Stack trace:', and their indented frames) left out, a newline
    left in it (a file name may hold one) shown as \\n."""
    return "\\n".join(_TRACE.sub("", str(message)).strip().split("\n"))


def at_least(minimum):
    """An argparse type: a whole number >= `minimum`, else the option's one-line error (exit 2)."""
    import argparse

    def parse(text):
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("must be a whole number, not '%s'" % text)
        if number < minimum:
            raise argparse.ArgumentTypeError("must be at least %d, not %d" % (minimum, number))
        return number

    return parse


def exit_with_code(program, action, usage_errors=(), debug=False):
    """Run `action`; report a ContractError (or one of `usage_errors`, as EXIT_USAGE) as one
    line on stderr and exit with its code; any other exception as one line and EXIT_BACKEND
    (its traceback only with `debug` or FACES_DEBUG=1); exit with EXIT_OK when all went well."""
    try:
        action()
    except ContractError as exc:
        code, message = exc.code, str(exc)
    except usage_errors as exc:
        code, message = EXIT_USAGE, str(exc)
    except Exception as exc:
        if debug or os.environ.get("FACES_DEBUG") == "1":
            raise
        code, message = EXIT_BACKEND, describe(exc)
    else:
        sys.exit(EXIT_OK)
    sys.stderr.write("%s: error: %s\n" % (program, one_line(message)))
    sys.exit(code)


def require_images(folder, names):
    """Fail with EXIT_BAD_IMAGE, naming the first, unless every listed image is a file."""
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise ContractError(EXIT_BAD_IMAGE, "cannot read image '%s': no such file (%d of %d listed "
                            "images are missing)" % (os.path.join(folder, missing[0]),
                                                     len(missing), len(names)))


def hash_names(names):
    """The fingerprint of a list of image names."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def parse_shard(text):
    """'I/N' (I counted from 0) -> (I, N); None -> None."""
    if text is None:
        return None
    try:
        index, count = [int(part) for part in text.split("/")]
    except ValueError:
        raise ContractError(EXIT_USAGE, "--shard must be I/N with integers, got '%s'" % text)
    if count < 1 or not 0 <= index < count:
        raise ContractError(EXIT_USAGE, "--shard %s: need 0 <= I < N" % text)
    return index, count


def shard_bounds(total, shard, align=1):
    """Rows [start, stop) of shard (I, N): contiguous, so shards concatenate in order. Inner
    boundaries fall on multiples of `align` (the images of one forward batch), so a sharded
    run feeds the framework exactly the batches an unsharded run does: same numbers, bit
    for bit, not just to float tolerance."""
    if shard is None:
        return 0, total

    def boundary(k):
        return total if k == shard[1] else min(total, total * k // shard[1] // align * align)

    return boundary(shard[0]), boundary(shard[0] + 1)


def output_prefix(split, shard):
    return split if shard is None else "%s.shard-%d-of-%d" % (split, shard[0], shard[1])


def output_files(out, prefix):
    """{'embeddings', 'flip', 'augment', 'index', 'meta'} -> path of that output of `prefix`."""
    return dict((key, os.path.join(out, prefix + suffix)) for key, suffix in _SUFFIXES.items())


def clear_outputs(files, keep):
    """Before a run writes a split: remove its meta (so the split reads as unfinished until
    this run is done) and the outputs this run will not write (e.g. an older run's _flip.npy),
    so the split's files always come from one run."""
    for key in ["meta"] + [k for k in ("flip", "augment") if k not in keep]:
        if os.path.isfile(files[key]):
            os.remove(files[key])


def read_meta(out, split):
    """The meta of a finished split; IOError when the split is not (completely) there."""
    path = output_files(out, split)["meta"]
    if not os.path.isfile(path):
        raise IOError("%s is missing: embed the %s split first" % (path, split))
    return read_json(path)


def load_outputs(out, split):
    """{'names': the index's image names, plus each array the split's meta lists:
    'embeddings', and 'flip' / 'augment' where the split has them}; ValueError naming the file
    when an array's rows disagree with the index."""
    files = output_files(out, split)
    listed = read_meta(out, split)["files"]
    with io.open(files["index"], encoding="utf-8") as f:
        found = {"names": [line.rstrip("\n").split(",", 1)[1] for line in f.readlines()[1:]]}
    for key in listed:
        if key != "index":
            found[key] = np.load(files[key])
            if len(found[key]) != len(found["names"]):
                raise ValueError("%s: %d rows, but %s lists %d images"
                                 % (files[key], len(found[key]), files["index"], len(found["names"])))
    return found
