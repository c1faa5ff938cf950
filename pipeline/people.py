"""A folder of named people (<people>/<Name>/*.jpg) and the gallery's books on it: who has which
label (people.csv) and which photo was enrolled in which batch (photos.csv).

Labels never change once given: a person enrolled before keeps theirs, new people get the next
ones in name order, and a person whose folder is gone keeps their row (with no images), so the
label is never given to anyone else. A photo is known by its path and its bytes: one replaced
or added is enrolled in a new batch, one unchanged is never processed again.
"""
import csv
import hashlib
import io
import os
import shutil
import unicodedata

from shared.faces.images import IMAGE_EXTENSIONS, WRITABLE_EXTENSIONS, load_rgb, save_rgb
from shared.storage import write_text

PEOPLE_FIELDS = ("label", "name", "images", "left_out", "why")
PHOTO_FIELDS = ("id", "label", "source", "sha256", "batch", "status", "faces")


class PeopleError(ValueError):
    """A people folder or gallery that cannot be enrolled as it is: one line naming the place."""


def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def scan(root):
    """{name: [photo paths relative to root]} of a people folder: a folder per person, the image
    files directly inside it. PeopleError for no person, an empty person and names that differ
    only in case (they would be one person on some disks and two on others)."""
    if not os.path.isdir(root):
        raise PeopleError("%s is not a folder of people (one folder per person)" % root)
    people = [n for n in _visible(os.listdir(root)) if os.path.isdir(os.path.join(root, n))]
    if not people:
        raise PeopleError("%s holds no person folders (one folder per person, named after them)" % root)
    seen, found = {}, {}
    for name in people:
        key = unicodedata.normalize("NFC", name).casefold()
        if key in seen:
            raise PeopleError("%s: the folders '%s' and '%s' differ only in case: merge or rename one"
                              % (root, seen[key], name))
        seen[key] = name
        folder = os.path.join(root, name)
        photos = [n for n in _visible(os.listdir(folder)) if n.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, n))]
        if not photos:
            raise PeopleError("%s: no photos (%s) in this person's folder" % (folder, " ".join(IMAGE_EXTENSIONS)))
        found[unicodedata.normalize("NFC", name)] = [os.path.join(name, p) for p in photos]
    return found


def read_rows(path):
    """The rows of one of the gallery's CSV books ([] when it does not exist yet)."""
    if not os.path.isfile(path):
        return []
    with io.open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, fields, rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, out.getvalue())


def labels_for(previous, names):
    """{name: label}: previous people keep their labels, new ones follow in name order."""
    labels = dict((row["name"], int(row["label"])) for row in previous)
    following = max(labels.values()) + 1 if labels else 0
    for name in sorted(n for n in names if n not in labels):
        labels[name] = following
        following += 1
    return labels


def crop_extension(source):
    """The extension a photo is placed under: its own where the align service can write its crops
    so (a crop keeps the photo's name), else .png (place_photo re-encodes it)."""
    extension = os.path.splitext(source)[1].lower()
    return extension if extension in WRITABLE_EXTENSIONS else ".png"


def photo_id(label, source, digest):
    """A photo's file name in the gallery: its person's label, then a hash of its path and bytes."""
    key = hashlib.sha256((source + "\0" + digest).encode("utf-8")).hexdigest()[:12]
    return "%05d-%s%s" % (label, key, crop_extension(source))


def place_photo(source, target):
    """The photo at `target` (a hard link where the disk allows, else a copy; re-encoded as PNG
    where the align service could not write its crops under the original's extension), once it
    was read as an image (ContractError naming `source` otherwise)."""
    if os.path.exists(target):
        return
    pixels = load_rgb(source)  # a file that is no image fails here, named as the user knows it
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".tmp" + os.path.splitext(target)[1]
    if crop_extension(source) != os.path.splitext(source)[1].lower():
        save_rgb(tmp, pixels)
    else:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    os.rename(tmp, target)
