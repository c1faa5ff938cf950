"""Every task argument checked at the door, before anything is written: the names that become a
part of a path (steps, models, splits, crops, fold columns, ablation rows) against what exists,
the numbers for their type and range. Each problem is one line naming the option and, for a
name, the valid ones; exit 2 (the contract's EXIT_USAGE). What a service checks for itself (its
lists, image names, output folders) is shared/contract/validate.py."""
import re

from shared.faces.template import CROP_SIZES
from shared.method.steps import PSEUDO_SOURCE, STEPS
from shared.models import registry as registry_mod
from shared.schema import EXIT_USAGE, ContractError

SPLITS = ("train", "test")  # the dataset's splits: aligned/<crop>/<split>, embeddings/<model>/<split>.npy
RUNNERS = ("local", "docker", "auto")
_COLUMN = re.compile(r"^rt([0-9]|[12][0-9])$")  # the fold columns of folds.csv: rt0..rt29


def refuse(message):
    raise ContractError(EXIT_USAGE, message)


def one_of(value, valid, option):
    """`value` when it is one of `valid`, else one line naming the option and the valid values."""
    if value not in valid:
        refuse("%s '%s' is not one of: %s" % (option, value, ", ".join(valid)))
    return value


def names(text, valid, option):
    """The comma-separated names of `text`, each one of `valid` (one line listing the unknown and valid ones)."""
    items = [item.strip() for item in str(text if text is not None else "").split(",")]
    if not all(items):
        refuse("%s '%s' names nothing between its commas" % (option, text))
    unknown = [item for item in items if item not in valid]
    if unknown:
        refuse("%s: no %s (valid: %s)" % (option, ", ".join("'%s'" % u for u in unknown), ", ".join(valid)))
    return items


def step(value, option="--step"):
    return one_of(value, STEPS, option)


def target(value):
    """A pseudo-label set: a step whose set comes from the step before (step6, step7)."""
    return one_of(value, sorted(PSEUDO_SOURCE), "--target")


def models(text, option="--models"):
    """Registry names (shared/models/models.yaml); None stays None (the task's default models)."""
    return None if text is None else names(text, registry_mod.load().names(), option)


def model(text, option="--model"):
    return one_of(text, registry_mod.load().names(), option)


def splits(text):
    return names(text, SPLITS, "--splits")


def crops(text):
    """--crops: None (the registry's), else crop names of shared/faces/template.py."""
    return None if text is None else names(text, sorted(CROP_SIZES), "--crops")


def column(value, option="--column"):
    if not _COLUMN.match(str(value)):
        refuse("%s '%s' is not a fold column (rt0 .. rt29)" % (option, value))
    return value


def runner(value):
    return value if value is None else one_of(value, RUNNERS, "--runner")


def integer(value, option, minimum=1):
    """`value` as a whole number of at least `minimum`; None stays None (the option's default)."""
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        refuse("%s must be a whole number, not '%s'" % (option, value))
    if number < minimum:
        refuse("%s must be at least %d, not %d" % (option, minimum, number))
    return number


def cluster(spec):
    """--cluster: none, local[:N], slurm[:JOBS] (N, JOBS >= 1), tcp://HOST:PORT, tls://..., PATH.json."""
    kind, colon, count = str(spec).partition(":")
    if kind in ("local", "slurm") and colon:
        integer(count, "--cluster %s:N" % kind)
    elif not (kind in ("none", "local", "slurm") or spec.startswith(("tcp://", "tls://")) or spec.endswith(".json")):
        refuse("--cluster '%s' is not one of: none, local[:N], slurm[:JOBS], tcp://HOST:PORT, PATH.json" % spec)
    return spec
