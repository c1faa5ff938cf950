"""`weights` collection: which registry models have their weight files, and where the rest go."""
import os
import subprocess

from invoke import task

from pipeline import context
from pipeline.common import fail
from shared.models import registry as registry_mod
from shared.running.runner import LocalRunner

PRESENT, MISSING, MISMATCH = "present", "missing", "sha256 mismatch"


def package_folder(entry):
    """Where a model shipped in a Python package lives: asked of its service's environment,
    since the package is installed there, not in the tasks' one. None if that fails."""
    try:
        python = LocalRunner().python(entry["family"])
    except FileNotFoundError:
        return None
    proc = subprocess.run([python, "-c", "import sys; from shared.models.registry import _package_dir; "
                           "print(_package_dir(sys.argv[1]) or '')", entry["weights"]["package"]],
                          capture_output=True, text=True, cwd=LocalRunner().root)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return proc.stdout.strip()


def model_status(entry, weights_root):
    """(status, folder, detail) for one registry entry; check_weights does the sha256 work."""
    folder = registry_mod.weights_dir(entry, weights_root)
    if entry["weights"].get("package") and not os.path.isdir(folder):
        folder = package_folder(entry) or folder
    try:
        registry_mod.check_weights(entry, folder)
    except registry_mod.WeightsError as exc:
        missing = [n for n in sorted(entry["weights"]["files"]) if not os.path.isfile(os.path.join(folder, n))]
        if missing:
            return MISSING, folder, ", ".join(missing)
        return MISMATCH, folder, str(exc)
    unpinned = [n for n, digest in sorted(entry["weights"]["files"].items()) if not digest]
    return PRESENT, folder, ("no sha256 registered for " + ", ".join(unpinned)) if unpinned else "sha256 verified"


@task(help={"models": "comma-separated registry names (default: all)", "workspace": "workspace folder"})
def check(c, models=None, workspace=None):
    """For every registry model: present / missing / sha256 mismatch, where its files are expected,
    and where its publisher distributes them. Fails (exit 1) only on a sha256 mismatch."""
    ctx = context.from_task(c, workspace)
    registry = ctx.registry
    names = models.split(",") if models else registry.names()
    counts = {PRESENT: 0, MISSING: 0, MISMATCH: 0}
    for name in names:
        entry = registry.model(name)
        status, folder, detail = model_status(entry, ctx.config["weights_dir"])
        counts[status] += 1
        print("%-26s %-15s %s" % (name, status, folder))
        print("%-26s %-15s %s" % ("", "", detail))
        if status != PRESENT:
            print("%-26s %-15s source: %s" % ("", "", entry["weights"]["source"]))
    print("%d present, %d missing, %d sha256 mismatch (weights root: %s)"
          % (counts[PRESENT], counts[MISSING], counts[MISMATCH], ctx.config["weights_dir"]))
    if counts[MISMATCH]:
        fail("some weight files are not the published ones (see above)", code=1)
