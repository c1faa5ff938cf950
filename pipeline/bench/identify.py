"""`invoke bench.identify`: how long `invoke identify` takes for one photo of 10 faces against a
gallery of many people (1,000 by default), cold and warm.

The people and photos come from the LFW crops (shared/method/group_photos.py: each person's
photos placed in photos of their own; group photos of 5 enrolled people and 5 strangers), the
gallery from `invoke enroll` with its profile (best: its models, its engine), under
<workspace>/bench/identify/people-N/, kept for later runs. Cold: the first call after the
kernel dropped its page cache (root only; else said so), each service starting afresh.
Warm: the same call on another photo right after. Each figure is a whole call: the align
service's faces program, an embed process per model, the head service's ranking.
"""
import os
import subprocess
import time

from invoke import task

from pipeline import context
from pipeline.enroll import enroll_stage
from pipeline.identify import identify_stage
from shared.method.group_photos import build
from shared.running import settings as settings_mod
from shared.storage import read_json

FACES = 10  # faces per photo: 5 enrolled people and 5 strangers


def drop_page_cache():
    """True where the kernel dropped its page cache (root); False otherwise."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed_identify(ctx, photo, out):
    started = time.time()
    rows = identify_stage(ctx, [photo], out)
    seconds = time.time() - started
    meta = read_json(os.path.join(out, ".work", "faces", "faces_meta.json"))
    return seconds, rows, meta


@task(help={"people": "people in the gallery", "profile": "the gallery's profile (models, engine)",
            "runner": "local, docker or auto (default: invoke.yaml)", "workspace": "workspace folder"})
def identify(c, people=1000, profile="best", runner=None, workspace=None):
    """Wall time of `invoke identify` for a 10-face photo against a gallery of PEOPLE people, cold and warm."""
    base = context.from_task(c, workspace, runner, profile)
    root = os.path.join(base.paths["bench"], "identify", "people-%d" % int(people))
    if not os.path.isfile(os.path.join(root, "truth.csv")):
        build(settings_mod.under(base.config["data_dir"], base.config["benchmark"]["source"]), root, base.seed,
              int(people), photos_each=2, strangers=FACES, group_photos=2, known_per_photo=FACES // 2)
    ctx = context.from_task(c, os.path.join(root, "gallery"), runner, profile)
    started = time.time()
    summary = enroll_stage(ctx, os.path.join(root, "people"))
    enrolled = time.time() - started
    cold = drop_page_cache()
    figures = []
    for number in range(2):
        out = os.path.join(root, "identified-%d" % number)
        figures.append(timed_identify(ctx, os.path.join(root, "photos", "group-%d.jpg" % number), out))
    print("bench.identify: gallery of %d people (%d photos, %d faces), models %s, engine %s; enroll (or its check) "
          "%.1f s" % (summary["people"], summary["photos"], summary["faces"], ", ".join(summary["models"]),
                      summary["engine"], enrolled))
    for label, (seconds, rows, meta) in zip(("cold" if cold else "first (page cache not dropped: not root)", "warm"),
                                             figures):
        found = sum(1 for r in rows if r["decision"] != "no face")
        print("  %-44s %6.1f s for %d faces (detectors %.1f s load + %.1f s)"
              % (label, seconds, found, meta["timing"]["load_s"], meta["timing"]["faces_s"]))
