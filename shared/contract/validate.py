"""Every input checked at the door, in one place: lists, CSVs, image names, split names, labels,
output folders, the dataset as a whole; and the locks on what a run writes. Each check raises a
ContractError naming the file (and row) and exits with the contract's code; where many things
are wrong, the first MAX_PROBLEMS and a count are reported at once.

Lists are UTF-8 (a BOM is ignored). A plain list names one image a line; blank lines are skipped
and there are no comments (a name may begin with '#'). A list whose first CSV field is `image` is
a CSV (the csv module's: quoted fields may hold commas and newlines); its `image` column is the
list. An image name is a relative path that stays inside its folder. Python-2.7 compatible.
"""
from __future__ import absolute_import, division, print_function

import csv
import fcntl
import hashlib
import io
import os
import re
import sys

from shared.schema import EXIT_BAD_IMAGE, EXIT_USAGE, UNKNOWN_LABEL, ContractError

MAX_PROBLEMS = 20
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LABEL = re.compile(r"^[0-9]+$")
_HELD = {}  # lock files this process holds, by path


def problems_error(code, what, problems):
    """One line: `what`: the first MAX_PROBLEMS problems, then how many more there are."""
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = len(problems) - MAX_PROBLEMS
    return ContractError(code, "%s: %d problem%s: %s%s" % (
        what, len(problems), "" if len(problems) == 1 else "s", shown,
        "; ... and %d more" % more if more > 0 else ""))


def read_text(path, what="list file"):
    """The file's text, decoded as UTF-8 (a BOM dropped); EXIT_USAGE naming the line otherwise."""
    if not os.path.isfile(path):
        raise ContractError(EXIT_USAGE, "%s '%s' %s" % (what, path, "is a folder" if os.path.isdir(path) else "does not exist"))
    with io.open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContractError(EXIT_USAGE, "%s '%s' line %d is not valid UTF-8" % (
            what, path, data[:exc.start].count(b"\n") + 1))


def _csv_rows(text):
    """[(the line a row starts on, its fields)]; a quoted field keeps its commas and newlines."""
    py2 = sys.version_info[0] == 2  # Python 2's csv reads bytes
    reader = csv.reader(io.BytesIO(text.encode("utf-8")) if py2 else io.StringIO(text, newline=""))
    rows, start = [], 1
    for row in reader:
        rows.append((start, [field.decode("utf-8") for field in row] if py2 else row))
        start = reader.line_num + 1
    return rows


def read_table(path, columns, what="CSV file"):
    """[(line number, {column: value})] of a CSV with a header naming at least `columns`."""
    rows = _csv_rows(read_text(path, what))
    header = [name.strip() for name in rows[0][1]] if rows else []
    missing = [name for name in columns if name not in header]
    if missing:
        raise ContractError(EXIT_USAGE, "%s '%s' has no column %s (header: %s)" % (
            what, path, ", ".join(repr(m) for m in missing), ",".join(header) or "none"))
    found = []
    for number, row in rows[1:]:
        if not any(field.strip() for field in row):
            continue
        row = row + [""] * (len(header) - len(row))
        found.append((number, dict((name, row[header.index(name)].strip()) for name in columns)))
    return found


def name_problem(name):
    """Why `name` cannot be an image name (a relative path that stays inside its folder), or None."""
    if not name:
        return "an empty image name"
    if "\x00" in name or "\\" in name:
        return "'%s' holds a NUL or a backslash" % name
    if os.path.isabs(name) or name.startswith("~"):
        return "'%s' is not a path relative to the images folder" % name
    if os.path.normpath(name).split(os.sep)[0] == "..":
        return "'%s' leaves the images folder" % name
    return None


def check_names(numbered, what):
    """Refuse (EXIT_USAGE) bad and duplicate names; `numbered` is [(line number, name)]."""
    problems, first = [], {}
    for number, name in numbered:
        if name_problem(name):
            problems.append("line %d: %s" % (number, name_problem(name)))
        elif name in first:
            problems.append("line %d: '%s' is listed twice (first on line %d)" % (number, name, first[name]))
        else:
            first[name] = number
    if problems:
        raise problems_error(EXIT_USAGE, what, problems)
    if not numbered:
        raise ContractError(EXIT_USAGE, "%s names no images" % what)
    return [name for _, name in numbered]


def read_list(path):
    """The image names of a list file (see the module's rules), every one checked."""
    lines = read_text(path).splitlines()
    first = next((line for line in lines if line.strip()), "")
    if [fields[:1] for _, fields in _csv_rows(first)][:1] == [["image"]]:
        numbered = [(number, row["image"]) for number, row in read_table(path, ["image"], "list file")]
    else:
        numbered = [(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip()]
    return check_names(numbered, "list file '%s'" % path)


def check_split(split):
    """A split name is a plain file-name token (it prefixes output file names)."""
    if not _SPLIT.match(split or "") or ".." in split:
        raise ContractError(EXIT_USAGE, "--split '%s' must be a plain name (letters, digits, '_', '-', "
                            "'.'; not '..')" % split)
    return split


def check_out(out, flag="--out"):
    """Make sure `out` is a writable folder or can be made one (it is made later, when there is
    something to write); EXIT_USAGE naming it otherwise."""
    existing = os.path.abspath(out)
    while not os.path.exists(existing):  # the nearest folder that exists: --out is made under it
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ContractError(EXIT_USAGE, "%s '%s' is not a folder%s" % (
            flag, out, "" if existing == os.path.abspath(out) else " ('%s' is a file)" % existing))
    if not os.access(existing, os.W_OK):
        raise ContractError(EXIT_USAGE, "%s '%s' is not writable (read-only file system or no "
                            "permission)" % (flag, out))
    return out


def hold_lock(out, prefix, whole=False):
    """An exclusive lock on <out>/.<prefix>.lock (`whole`: on the folder as a whole) until
    release_lock, taken again by the same process without waiting (each take wants its release);
    EXIT_USAGE when another run holds it. The kernel drops it when we die."""
    path = os.path.join(out, "." + prefix + ".lock")
    if path not in _HELD:
        os.path.isdir(out) or os.makedirs(out)
        handle = open(path, "a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            handle.close()
            raise ContractError(EXIT_USAGE, "another run holds %s%s" % (out, "" if whole else " (writing '%s')" % prefix))
        _HELD[path] = [handle, 0]
    _HELD[path][1] += 1
    return path


def release_lock(path):
    held = _HELD.get(path, [None, 0])
    held[1] -= 1
    if held[1] == 0:
        del _HELD[path]
        os.remove(path)
        held[0].close()


def content_digests(folder, names):
    """The sha256 of each image's bytes: what a fingerprint of the images rests on (a replaced
    image changes it, whatever its size and mtime)."""
    found = []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            found.append(hashlib.sha256(f.read()).hexdigest())
    return found


def chunk_tags(digests, bounds):
    """One short hash per chunk [lo, hi) of the images' digests (shared/contract/resumable.py run_chunks)."""
    return [hashlib.sha256("".join(digests[lo:hi]).encode("ascii")).hexdigest()[:16] for lo, hi in bounds]


def label_problem(text):
    """Why `text` cannot be a known identity's label (0..UNKNOWN_LABEL-1), or None."""
    if not _LABEL.match(text):
        return "label '%s' is not a non-negative integer" % text
    if int(text) >= UNKNOWN_LABEL:
        return "label %s is out of range (known identities are 0..%d; %d means unknown)" % (
            text, UNKNOWN_LABEL - 1, UNKNOWN_LABEL)
    return None


def image_problems(folder, numbered, file_name):
    """'<file> line N: ...' for each listed image under `folder` that is missing or unreadable
    (`numbered`: [(line number, name)], 0 where the image comes from no file)."""
    from shared.faces.images import ImageError, load_rgb

    problems = []
    for number, name in numbered:
        try:
            load_rgb(os.path.join(folder, name))
        except ImageError as exc:
            where = "%s line %d" % (file_name, number) if number else file_name
            problems.append("%s: '%s': %s" % (where, name, exc.problem))
    return problems


def _train_problems(dataset):
    """(problems with train.csv's rows, [(line, image)] of the rows with a usable name, labels)."""
    rows = read_table(os.path.join(dataset, "train.csv"), ["image", "label"], "train.csv")
    if not rows:
        raise ContractError(EXIT_USAGE, "train.csv in '%s' names no images" % dataset)
    problems, first, usable, labels = [], {}, [], set()
    for number, row in rows:
        name, problem = row["image"], name_problem(row["image"]) or label_problem(row["label"])
        if not problem and name in first:
            problem = "'%s' is listed twice (first on line %d)" % (name, first[name])
        if problem:
            problems.append("train.csv line %d: %s" % (number, problem))
            continue
        first[name] = number
        usable.append((number, name))
        labels.add(int(row["label"]))
    return problems, usable, labels


def check_dataset(dataset):
    """Validate a dataset in the competition layout once, before any work: train.csv's names
    and labels (0..K-1, K <= UNKNOWN_LABEL), no duplicates, every named image there and
    decodable, the test images too. Returns {'train', 'identities', 'test'} counts."""
    from shared.faces.images import list_images

    problems, usable, labels = _train_problems(dataset)
    bad_rows = len(problems)
    problems += image_problems(os.path.join(dataset, "train"), usable, "train.csv")
    submission = os.path.join(dataset, "sample_submission.csv")
    if os.path.isfile(submission):
        test = [(number, row["image"]) for number, row in read_table(submission, ["image"], "sample_submission.csv")]
        check_names(test, "sample_submission.csv")
    else:
        test = [(0, name) for name in list_images(os.path.join(dataset, "test"))]
    problems += image_problems(os.path.join(dataset, "test"), test, "sample_submission.csv" if os.path.isfile(
        submission) else "test/")
    if not test:
        problems.append("the test folder '%s' holds no images" % os.path.join(dataset, "test"))
    if problems:
        raise problems_error(EXIT_USAGE if bad_rows else EXIT_BAD_IMAGE, "dataset '%s'" % dataset, problems)
    return {"train": len(usable), "identities": len(labels), "test": len(test)}
