"""The report's "Unknown faces" section: how each system tells strangers from known people. The
trade-off of each unknown decision as its threshold moves (reports/diagnostics.json), and how
the test faces' scores fall, known and unknown apart: the step-4 rules' distance to the nearest
train face (pseudo/step6.json, when step 4's heads made the pseudo-labels) and the prototypes'
best fused cosine."""
import os

from pipeline import plots
from pipeline import report_html as html
from shared.method.ensemble import UNKNOWN


def _by_truth(values, truth):
    """[(label, values)]: {image: value} split into known and unknown test faces by the truth,
    or one unlabelled group without it."""
    if not truth:
        return [("test faces (no truth: unlabelled)", list(values.values()))]
    return [("known test faces", [v for n, v in values.items() if int(truth[n]) != UNKNOWN]),
            ("unknown test faces", [v for n, v in values.items() if int(truth[n]) == UNKNOWN])]


def _tradeoffs(diag, figures):
    rule = diag["unknown_rule"]
    plots.tradeoff(rule, "Unknown rule of the step-4 ensemble (probability < %.2f and distance above the "
                   "threshold)" % rule["probability"], os.path.join(figures, "unknown-rule.png"))
    body = html.figure(html.FILES + "/unknown-rule.png", "unknown rule trade-off",
                       "A test face is called unknown when its distance to the nearest train face is above the "
                       "threshold and the ensemble's best probability is below %.2f; the dashed line is the "
                       "threshold the rules chose (%.3f)." % (rule["probability"], rule["chosen"]))
    for model, sweep in sorted(diag["nearest_neighbour"].items()):
        name = "nearest-neighbour-%s.png" % model
        plots.tradeoff(sweep, "Nearest-neighbour baseline on %s" % model, os.path.join(figures, name))
        body += html.figure(html.FILES + "/" + name, "nearest neighbour trade-off %s" % model,
                            "Unknown when the nearest train face's cosine similarity is below the threshold; "
                            "the dashed line is the one tuned on the validation folds (%.3f)." % sweep["chosen"])
    return body


def _prototypes(sweep, truth, figures):
    fusion = ", ".join("%s %.1f" % mw for mw in sorted(sweep["weights"].items()))
    plots.tradeoff(sweep, "Class prototypes (%s)" % fusion, os.path.join(figures, "prototypes.png"))
    body = html.figure(html.FILES + "/prototypes.png", "class prototypes trade-off",
                       "The prototypes submission as its unknown score varies, the fusion it chose kept: "
                       "unknown is ranked above every class whose fused cosine is below the score. The "
                       "dashed line is the score chosen on the validation folds (%.2f); the test's best "
                       "MAP@5 over the whole grid is %.4f." % (sweep["chosen"], max(sweep["map5"])))
    plots.histogram(_by_truth(dict(zip(sweep["best_score"]["images"], sweep["best_score"]["values"])), truth),
                    [("unknown score", sweep["chosen"])], os.path.join(figures, "prototype-scores.png"),
                    "best fused cosine to a class prototype", "How close test faces come to a known person")
    return body + html.figure(html.FILES + "/prototype-scores.png", "best prototype cosine histogram",
                              "Each test face's best fused cosine to a class prototype. Faces below the unknown "
                              "score get \"unknown\" first: the known faces left of the line and the unknown "
                              "faces right of it are the prototypes' unknown-decision errors.")


def _distances(step6, truth, figures):
    rules = step6["rules"]
    distances = dict(zip(step6["min_distance"]["images"], step6["min_distance"]["values"]))
    plots.histogram(_by_truth(distances, truth), [("unknown_distance", rules["unknown_distance"]),
                                                  ("pseudo_distance", rules["pseudo_distance"])],
                    os.path.join(figures, "distances.png"),
                    "minimum squared L2 distance to a train face (weighted over models)",
                    "How far test faces are from the nearest train face")
    return html.figure(html.FILES + "/distances.png", "minimum distance histogram",
                       "Minimum distance of each test face to the train faces (the step-4 rules' distance). "
                       "Pseudo-labels need a distance below pseudo_distance, unknowns one above unknown_distance.")


def unknown_section(diag, step6, truth, figures):
    """The section's HTML; its figures written into `figures`."""
    body = ""
    if diag:
        body += _tradeoffs(diag, figures)
        if diag.get("prototypes"):
            body += _prototypes(diag["prototypes"], truth, figures)
    if step6 and "min_distance" in step6:  # absent where the prototypes made the pseudo-labels
        body += _distances(step6, truth, figures)
    return html.section("Unknown faces", body or html.note("No step-4 pseudo-labels or evaluation in this workspace."))
