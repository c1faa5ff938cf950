"""The competition's submission format: `image,label` with five class ids, space separated."""
import io

from shared.schema import UNKNOWN_LABEL
from shared.storage import write_text


def fill_top5(row):
    """A ranking of fewer than five classes (a dataset of fewer identities) made five distinct
    ids: the unknown id where absent, then the lowest ids not yet in it (no such identity)."""
    row = [int(c) for c in row][:5]
    fill = [UNKNOWN_LABEL] + list(range(len(row) + 5))
    return row + [c for c in fill if c not in row][:5 - len(row)]


def write_submission(path, images, ranked):
    if len(images) != len(ranked):
        raise ValueError("%d images but %d rankings" % (len(images), len(ranked)))
    lines = ["image,label"]
    for image, row in zip(images, ranked):
        if len(row) != 5 or len(set(row)) != 5:
            raise ValueError("%s: need five distinct class ids, got %s" % (image, list(row)))
        lines.append("%s,%s" % (image, " ".join(str(int(c)) for c in row)))
    write_text(path, "\n".join(lines) + "\n")


def read_submission(path):
    """(images, rankings) from a submission file, with a clear error for malformed rows."""
    images, ranked = [], []
    with io.open(path, encoding="utf-8") as f:
        header = f.readline().strip()
        if header != "image,label":
            raise ValueError("%s: header must be 'image,label', got %r" % (path, header))
        for number, line in enumerate(f, 2):
            image, _, labels = line.strip().partition(",")
            try:
                row = [int(x) for x in labels.split()]
            except ValueError:
                row = []
            if not image or len(row) != 5:
                raise ValueError("%s line %d: expected 'image,c1 c2 c3 c4 c5', got %r" % (path, number, line))
            images.append(image)
            ranked.append(row)
    return images, ranked
