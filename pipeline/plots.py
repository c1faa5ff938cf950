"""The figures of the report and the benchmarks, drawn with matplotlib's Agg backend (files, no
display) in the tasks' environment only; the services write the data (pipeline/report.py reads
it). Every function writes one PNG and closes its figure."""
import os

import numpy as np

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path


def systems_bar(rows, path, floor=1e-3):
    """rows: [(system, MAP@5, top-1)], drawn as grouped horizontal bars of the errors (1 - score)
    on a log axis: where systems score 0.957 and 0.988 on a 0-1 axis they look alike, their
    errors (0.043 and 0.012) are a factor of 3.6 apart. No error at all is drawn at `floor`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))
    worst = max([floor] + [1 - row[key] for row in rows for key in (1, 2)])
    for offset, (key, label, colour) in zip((-0.2, 0.2), ((1, "MAP@5", COLOURS[0]), (2, "top-1", COLOURS[1]))):
        values = [row[key] for row in rows]
        errors = np.maximum(1 - np.asarray(values, dtype=float), floor)
        ax.barh(y + offset, errors, height=0.4, label="1 - %s" % label, color=colour)
        for yy, value, error in zip(y + offset, values, errors):
            ax.text(error * 1.08, yy, "%.4f (%s %.4f)" % (1 - value, label, value), va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([row[0] for row in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.5, worst * 6)  # room for the labels
    ax.set_xlabel("errors on the test set, 1 - score (log axis; shorter is better, %g = none)" % floor)
    ax.set_title("Errors (1 - MAP@5, 1 - top-1) per system")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / (0.45 * len(rows) + 1.2)), ncol=2)
    return save(fig, path)


def tradeoff(sweep, title, path):
    """Unknown precision, recall and MAP@5 against a threshold; the chosen one marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = sweep["thresholds"]
    for key, label, colour in (("unknown_precision", "unknown precision", COLOURS[0]),
                               ("unknown_recall", "unknown recall", COLOURS[1]), ("map5", "MAP@5", COLOURS[2])):
        ax.plot(x, sweep[key], label=label, color=colour)
    chosen = sweep["chosen"]
    ax.axvline(chosen, color="black", linestyle="--", linewidth=1)
    at = int(np.argmin(np.abs(np.asarray(x) - chosen)))
    ax.annotate("chosen %.3f: MAP@5 %.3f" % (chosen, sweep["map5"][at]), (chosen, sweep["map5"][at]),
                xytext=(8, -24), textcoords="offset points", fontsize=9, arrowprops={"arrowstyle": "->"})
    ax.set_xlabel(sweep["axis"])
    ax.set_ylabel("score on the test set")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=9)
    ax.grid(alpha=0.3)
    return save(fig, path)


def histogram(groups, thresholds, path, axis, title):
    """groups: [(label, values)]; thresholds: [(label, value)] drawn as vertical lines; `axis`
    names the values."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    everything = np.concatenate([np.asarray(d, float) for _, d in groups if len(d)] + [[0.0, 1.0]]
                                + [[value for _, value in thresholds]])
    bins = np.linspace(float(everything.min()), float(everything.max()) + 1e-6, 41)
    for (label, values), colour in zip(groups, COLOURS):
        ax.hist(values, bins=bins, alpha=0.6, density=True, color=colour, label="%s (%d)" % (label, len(values)))
    for (label, value), style in zip(thresholds, ("--", ":")):
        ax.axvline(value, color="black", linestyle=style, linewidth=1, label="%s %.3f" % (label, value))
    ax.set_xlabel(axis)
    ax.set_ylabel("density (area 1 per group)")
    ax.set_title(title)
    ax.legend(fontsize=9)
    return save(fig, path)


def training_curves(summary, title, path):
    """Validation top-1 and loss per epoch of every head (one line each), the CLR learning rate on
    a second axis, each head's early-stopping point (its best epoch) marked. Returns the number of
    points of each head's accuracy curve (= the epochs it ran)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
    heads = summary["heads"]
    points = []
    for record, colour in zip(heads, COLOURS * (1 + len(heads) // len(COLOURS))):
        history = record["history"]
        epochs = np.arange(1, len(history["val_top1"]) + 1)
        label = "%s fold %d" % (record["column"], record["fold"])
        for ax, key in zip(axes, ("val_top1", "val_loss")):
            line, = ax.plot(epochs, history[key], color=colour, linewidth=1.2, label=label)
            best = record["best_epoch"]
            ax.plot([best + 1], [history[key][best]], marker="*", markersize=11, color=colour,
                    markeredgecolor="black", linestyle="none")
            if key == "val_top1":
                points.append(len(line.get_xdata()))
    for ax, label in zip(axes, ("validation top-1", "validation loss (cross-entropy)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        rate = ax.twinx()
        longest = max(heads, key=lambda r: len(r["history"]["learning_rate"]))["history"]["learning_rate"]
        rate.plot(np.arange(1, len(longest) + 1), longest, color="grey", linestyle=":", linewidth=1)
        rate.set_ylabel("learning rate (dotted)", color="grey")
    axes[0].legend(fontsize=7, loc="lower right", title="* early-stopping point", title_fontsize=7)
    fig.suptitle(title)
    save(fig, path)
    return points


def verification(scores, same, prefix):
    """ROC curve and same/different similarity histograms of LFW-style pairs: <prefix>_roc.png
    and <prefix>_similarity.png; returns their paths."""
    plt = pyplot()
    scores, same = np.asarray(scores, float), np.asarray(same, bool)
    order = np.argsort(-scores, kind="stable")
    tpr = np.concatenate([[0], np.cumsum(same[order]) / max(same.sum(), 1)])
    fpr = np.concatenate([[0], np.cumsum(~same[order]) / max((~same).sum(), 1)])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot(fpr, tpr, color=COLOURS[0], label="AUC %.4f" % np.trapz(tpr, fpr))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")  # face verification is judged at low false accept rates
    ax.set_xlim(1.0 / max((~same).sum(), 1), 1)
    ax.set_xlabel("false accept rate (different people accepted, log scale)")
    ax.set_ylabel("true accept rate (same person accepted)")
    ax.set_title("Verification ROC, %d pairs" % len(scores))
    ax.legend(loc="lower right")
    roc = save(fig, prefix + "_roc.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(min(-0.2, scores.min()), 1.0, 61)
    ax.hist(scores[same], bins=bins, alpha=0.6, color=COLOURS[2], label="same person (%d)" % same.sum())
    ax.hist(scores[~same], bins=bins, alpha=0.6, color=COLOURS[3], label="different people (%d)" % (~same).sum())
    ax.set_xlabel("cosine similarity of the pair's embeddings")
    ax.set_ylabel("pairs")
    ax.set_title("Similarity of same and different pairs")
    ax.legend()
    return roc, save(fig, prefix + "_similarity.png")


def contact_sheet(rows, path, title):
    """rows: [(label, [RGB image or None])], one row per label, a blank where an image is None."""
    plt = pyplot()
    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.3 * columns + 1.5, 1.4 * len(rows) + 0.6), squeeze=False)
    for (label, images), line in zip(rows, axes):
        for ax, image in zip(line, list(images) + [None] * columns):
            ax.set_xticks([])
            ax.set_yticks([])
            if image is not None:
                ax.imshow(image)
            else:
                ax.text(0.5, 0.5, "no face", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        line[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    return save(fig, path)
