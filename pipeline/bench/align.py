"""`invoke bench.align`: every detector of the align service on known answers, the real no-face
images and a group photo (shared/bench/align.py), with a contact sheet of the first canvases."""
import os

from invoke import task

from pipeline import arguments, context, plots


@task(help={"count": "LFW dev crops to paste onto canvases (default 300)", "seed": "sample and placement seed",
            "detectors": "comma-separated detectors to measure (default: all; those without weights are skipped)",
            "weights": "NAME=DIR,...: folders of single detectors' files (e.g. face-alignment=~/fa)",
            "model": "embedding model for the cosine check", "runner": "local, docker or auto (default: invoke.yaml)",
            "workspace": "workspace folder"})
def align(c, count=300, seed=2019, detectors=None, weights=None, model="model4_insightface", runner=None,
          workspace=None):
    """Detectors on known answers (LFW crops pasted at a known scale, rotation and offset), the
    24 real no-face images and the Solvay group photo: detection rate, template error, cosine."""
    from shared.bench import align as bench_align

    model = arguments.model(model)
    ctx = context.from_task(c, workspace, runner)
    root = os.path.join(ctx.paths["bench"], "align", "seed-%d" % seed)
    overrides = dict(pair.split("=", 1) for pair in weights.split(",")) if weights else {}
    bench = bench_align.AlignBench(ctx.runner, root, ctx.weights_root, ctx.registry.model(model), overrides)
    # Default: every detector of the service's chain; one without its weight files answers with
    # exit code 4 and is reported as skipped.
    chain = detectors.split(",") if detectors else bench_align.detector_chain()
    names, measured = bench_align.run(bench, ctx.config["data_dir"], chain, count, seed)
    print("contact sheet: %s" % contact_sheet(root, names[:8], measured))


def contact_sheet(root, names, detectors):
    """A few canvases and their aligned crops: the known-points crop, then each detector's (a
    blank where it found no face)."""
    from shared.faces.images import load_rgb

    def row(folder):
        return [load_rgb(os.path.join(folder, n)) if os.path.isfile(os.path.join(folder, n)) else None for n in names]

    rows = [("canvas", row(os.path.join(root, "canvases"))),
            ("known points", row(os.path.join(root, "known-points", "112x112", "canvases")))]
    rows += [(detector, row(os.path.join(root, detector, "112x112", "canvases"))) for detector in detectors]
    return plots.contact_sheet(rows, os.path.join(root, "contact-sheet.png"),
                               "The first %d canvases and their aligned 112x112 crops: with the known landmarks, then "
                               "each detector's" % len(names))
