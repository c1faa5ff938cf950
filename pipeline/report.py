"""`report`: reports/index.html, the page people look at after a run. It draws what the run left
in the workspace: the evaluation (reports/evaluation.json, diagnostics.json: the head service's
`evaluate`), the heads' per-epoch history (heads/*/*/summary.json), the rules' distances
(pseudo/step6.json; pipeline/report_unknown.py), the test truth where it exists, and the run's
settings and wall times (reports/run.json, written by `invoke all`). Figures and face
thumbnails are PNGs in reports/index_files/; the page has no script and loads nothing from the
network."""
import csv
import filecmp
import io
import os
import platform
import shutil

from invoke import task

from pipeline import context, plots
from pipeline import report_html as html
from pipeline.report_unknown import unknown_section
from pipeline.plan import requested_names
from pipeline.weights import model_status
from shared.method.ensemble import UNKNOWN
from shared.method.steps import STEPS
from shared.storage import read_json, write_json, write_text


def _read(path):
    return read_json(path) if os.path.isfile(path) else None


def _rows(path):
    """{image: row} of a CSV with an `image` column; {} where the file does not exist."""
    if not os.path.isfile(path):
        return {}
    with io.open(path, encoding="utf-8") as f:
        return dict((row["image"], row) for row in csv.DictReader(f))


def record_run(ctx, requested, chosen, timings):
    """What `invoke all` ran, for the report's header: reports/run.json."""
    write_json(os.path.join(ctx.paths["reports"], "run.json"),
               {"profile": ctx.profile_name, "seed": ctx.seed, "requested": requested, "models": chosen,
                "runner": ctx.runner.name, "timings": [[name, round(s, 1)] for name, s in timings]})


def _skipped(ctx, requested, used):
    found = []
    for name in (n for n in requested_names(ctx.registry, requested) if n not in used):
        status, folder, detail = model_status(ctx.registry.model(name), ctx.weights_root)
        found.append("%s: weights %s in %s (%s)" % (name, status, folder, detail))
    return found


def settings_section(ctx, run, models):
    import matplotlib
    import numpy

    rows = [["profile", html.text(run.get("profile", ctx.profile_name))], ["seed", run.get("seed", ctx.seed)],
            ["runner", html.text(run.get("runner", "-"))], ["models used", html.text(", ".join(models))],
            ["models skipped", "<br>".join(html.text(s) for s in _skipped(ctx, run.get("requested"), models)) or "-"]]
    for model in models:
        meta = _read(os.path.join(ctx.paths["embeddings"], model, "train_meta.json")) or {}
        weights = meta.get("weights", {}).get("files", {})
        rows.append(["%s weights (sha256)" % html.text(model),
                     "<br>".join("<code>%s</code> %s" % (html.text(f), html.text(d)) for f, d in sorted(weights.items()))])
        rows.append(["%s versions" % html.text(model), html.text(", ".join(
            "%s %s" % item for item in sorted(meta.get("versions", {}).items())))])
    rows.append(["tasks versions", html.text("python %s, numpy %s, matplotlib %s" % (
        platform.python_version(), numpy.__version__, matplotlib.__version__))])
    body = html.table(["setting", "value"], rows)
    timings = run.get("timings")
    if timings:
        body += html.table(["stage", "wall time (s)"], [[html.text(n), (s, "%.1f")] for n, s in timings] +
                           [["<b>total</b>", (sum(s for _, s in timings), "%.1f")]])
    else:
        body += html.note("No wall times: reports/run.json is written by <code>invoke all</code>.")
    return html.section("Run", body)


def evaluation_section(ev, figures):
    if ev is None:
        return html.section("Evaluation", html.note("No evaluation: the dataset has no test_truth.csv."))
    steps = [s for s in STEPS if any(s in entry for entry in ev["models"].values())]
    body = html.note("%d test images, %d of them unknown (label %d)." % (ev["test_images"], ev["test_unknown"], UNKNOWN))

    def val(entry):  # heads whose test rows models that saw their validation rows labelled
        return html.text("%.4f*" % entry["val_top1"]) if entry.get("val_sees_own_labels") else entry["val_top1"]

    body += html.table(["model"] + ["val top-1 %s" % s for s in steps] + ["test MAP@5 %s" % s for s in steps],
                       [[html.text(m)] + [val(e[s]) for s in steps] + [e[s]["map5"] for s in steps]
                        for m, e in sorted(ev["models"].items())])
    if any(e[s].get("val_sees_own_labels") for e in ev["models"].values() for s in steps):
        body += html.note("* Not honest: these heads learned from test rows labelled by models that saw their "
                          "validation rows' labels (one pseudo-label set for every head, the original's). A "
                          "profile's fold_pseudo_labels: true gives each head its own set.")
    systems = ev["systems"]
    body += html.table(["system", "MAP@5", "top-1", "unknown precision", "unknown recall"],
                       [[html.text(s["system"]), s["map5"], s["top1"], s["unknown_precision"], s["unknown_recall"]]
                        for s in systems])
    plots.systems_bar([(s["system"], s["map5"], s["top1"]) for s in systems], os.path.join(figures, "systems.png"))
    body += html.figure(html.FILES + "/systems.png", "errors (1 - MAP@5, 1 - top-1) per system",
                        "The errors, 1 - MAP@5 (the competition's score: 1 for a right first guess, 1/k for a right "
                        "k-th) and 1 - top-1, of each system on the test set, on a log axis: what separates systems "
                        "that all score near 1. The fused nearest neighbour's UPPER BOUND row is no method: its "
                        "threshold is the one the test truth picks.")
    return html.section("Evaluation", body)


def training_section(ctx, models, figures):
    body = ""
    for model in models:
        for step in STEPS:
            summary = _read(os.path.join(ctx.paths["heads"], model, step, "summary.json"))
            if not summary or not all("history" in r for r in summary["heads"]):
                continue
            name = "training-%s-%s.png" % (model, step)
            plots.training_curves(summary, "%s %s: %d heads, out-of-fold val top-1 %.4f"
                                  % (model, step, len(summary["heads"]), summary["val_top1"]),
                                  os.path.join(figures, name))
            body += html.figure(html.FILES + "/" + name, "training curves %s %s" % (model, step),
                                "Per head (fold column and fold): validation top-1 and loss per epoch; dotted: the "
                                "cyclical learning rate; star: the epoch whose weights were kept (early stopping, "
                                "patience %d of at most %d epochs)." % (summary["patience"], summary["epochs"]))
    return html.section("Training", body or html.note("No heads with a per-epoch history in this workspace."))


def _thumbnail(dataset, reports, split, name):
    """A 112-px PNG of dataset/<split>/<name> beside the page; its address from the page."""
    from PIL import Image

    if not name:
        return None
    target = "%s/faces/%s-%s.png" % (html.FILES, split, os.path.splitext(name.replace("/", "_"))[0])
    picture = Image.open(os.path.join(dataset, split, name)).convert("RGB")
    picture.thumbnail((112, 112))
    picture.save(os.path.join(reports, target), "PNG")
    return target


def _who(label, image, provenance):
    """'id 4 (Name)' where the benchmark's provenance.csv names the source image's person."""
    source = provenance.get(image, {}).get("source", "") if image else ""
    return "%s %s" % ("unknown" if label == UNKNOWN else "id %d" % label,
                      "(%s)" % html.text(source.split("/")[0]) if source else "")


def gallery_section(ctx, diag):
    if not diag:
        return html.section("Worst errors", html.note("No evaluation, so no known errors."))
    if diag.get("prototypes") and _final_is_prototypes(ctx.paths["submissions"]):  # the final submission's errors
        errors, score = diag["prototypes"]["worst_errors"], "cosine"
        what, legend = "the class prototypes submission (final.csv)", (
            "cosine: the fused cosine similarity to the class's prototype (the unknown score is %.2f)"
            % diag["prototypes"]["chosen"])
    else:
        errors, score = diag["worst_errors"], "p"
        what, legend = "the %s ensemble" % diag["errors_step"], "p: the ensemble's probability"
    dataset, reports = ctx.paths["dataset"], ctx.paths["reports"]
    provenance = _rows(os.path.join(dataset, "provenance.csv"))
    os.makedirs(os.path.join(reports, html.FILES, "faces"))
    rows = []
    for e in errors:
        damage = provenance.get(e["image"], {}).get("damage")
        rows.append(["%s<br>%s%s" % (html.image(_thumbnail(dataset, reports, "test", e["image"]), "test face"),
                                     html.text(e["image"]), "<br>damage: %s" % html.text(damage) if damage else ""),
                     "%s<br>guess %s" % (html.image(_thumbnail(dataset, reports, "train", e["guess_face"]), "guess"),
                                         _who(e["guess"], e["guess_face"], provenance)),
                     "%s<br>truth %s" % (html.image(_thumbnail(dataset, reports, "train", e["truth_face"]), "truth"),
                                         _who(e["truth"], e["truth_face"], provenance)),
                     "guess %s %s<br>truth %s %s<br>truth rank %s<br>distance %.3f" % (
                         score, _score(e["guess_score"]), score, _score(e["truth_score"]),
                         e["truth_rank"] or "not in top 5", e["min_distance"])])
    body = html.note("The %d most confident wrong first guesses of %s: the test face, a train face of the guessed "
                     "identity and one of the true identity (none for unknown). %s; distance: to the nearest train "
                     "face." % (len(rows), what, legend))
    return html.section("Worst errors", body + '<div class="gallery">%s</div>' % html.table(
        ["test face", "guessed identity", "true identity", "scores"], rows))


def _final_is_prototypes(submissions):
    """Whether final.csv is the prototypes submission (whichever profile wrote it)."""
    final, prototypes = (os.path.join(submissions, name) for name in ("final.csv", "prototypes.csv"))
    return os.path.isfile(final) and os.path.isfile(prototypes) and filecmp.cmp(final, prototypes, shallow=False)


def _score(value):
    return "-" if value is None else "%.3f" % value


def report_stage(ctx):
    """Write reports/index.html from what the workspace holds; returns its path."""
    reports = ctx.paths["reports"]
    figures = os.path.join(reports, html.FILES)
    if os.path.isdir(figures):
        shutil.rmtree(figures)  # a figure of an earlier run must not outlive it
    os.makedirs(figures)
    run = _read(os.path.join(reports, "run.json")) or {}
    models = run.get("models") or sorted(os.listdir(ctx.paths["heads"]) if os.path.isdir(ctx.paths["heads"]) else [])
    diag = _read(os.path.join(reports, "diagnostics.json"))
    truth = dict((n, r["label"]) for n, r in _rows(os.path.join(ctx.paths["dataset"], "test_truth.csv")).items())
    sections = [settings_section(ctx, run, models),
                evaluation_section(_read(os.path.join(reports, "evaluation.json")), figures),
                unknown_section(diag, _read(os.path.join(ctx.paths["pseudo"], "step6.json")), truth, figures),
                training_section(ctx, models, figures), gallery_section(ctx, diag)]
    path = os.path.join(reports, "index.html")
    write_text(path, html.page("Face recognition run report", "Workspace %s" % html.text(ctx.workspace), sections))
    return path


@task(help={"workspace": "workspace folder"})
def report(c, workspace=None):
    """Write reports/index.html: evaluation, plots, training curves and the worst errors of a run."""
    print("[report] %s" % report_stage(context.from_task(c, workspace)))
