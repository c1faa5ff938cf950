"""`invoke bench.heads`: one fold column's 5 heads trained one at a time (model.Head, the
reference) and together (batched.Heads, the default) on the same embeddings, interleaved in one
run, over several seeds: heads/s, head-epochs/s, CPU-seconds, and validation accuracy. Together
runs once with float32 training matmuls and, where this CPU's auto choice differs
(shared/hardware.py), once with that dtype; each row names the dtype its summary.json records."""
import os
import shutil

from invoke import task

from pipeline import arguments, context
from pipeline.bench.embed import measured
from pipeline.heads import head_job
from shared import hardware
from shared.storage import read_json


def paths():
    """(label, extra train arguments): one at a time, together in float32, and together in the
    auto choice of this CPU where that is not float32."""
    found = [("one at a time", ["--one-at-a-time"]), ("together float32", ["--matmul", "float32"])]
    chosen, _ = hardware.matmul_dtype("auto")
    if chosen != "float32":
        found.append(("together %s" % chosen, ["--matmul", "auto"]))
    return found


def run_one(ctx, args, out):
    """One `train` of the column into `out`: its figures (the service's own clock for the heads;
    CPU-seconds of the service process, which only a local runner shows)."""
    shutil.rmtree(out, ignore_errors=True)
    _, wall, cpu = measured(lambda out: ctx.runner.run("head", "train", args + ["--out", out]), out)
    summary = read_json(os.path.join(out, "summary.json"))
    heads = summary["heads"]
    seconds = sum(r["seconds"] for r in heads)
    epochs = sum(r["epochs"] for r in heads)
    return {"heads": len(heads), "heads_per_s": len(heads) / seconds, "head_epochs_per_s": epochs / seconds,
            "mean_epochs": epochs / float(len(heads)), "wall": wall, "cpu": cpu if ctx.runner.name == "local" else None,
            "val_top1": summary["val_top1"], "dtype": summary["train_matmul"]["used"]}


def _mean_spread(values):
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5


def report(figures, seeds, found):
    """The printed table and summary lines; `found`: paths()."""
    print("%-5s %-18s %-9s %8s %12s %7s %9s %9s %9s" % ("seed", "path", "dtype", "heads/s", "head-ep/s", "epochs",
                                                         "wall s", "cpu s", "val top-1"))
    for seed in seeds:
        for name, _ in found:
            f = figures[name][seed]
            print("%-5d %-18s %-9s %8.4f %12.3f %7.1f %9.1f %9s %9.4f" % (
                seed, name, f["dtype"], f["heads_per_s"], f["head_epochs_per_s"], f["mean_epochs"], f["wall"],
                "-" if f["cpu"] is None else "%.1f" % f["cpu"], f["val_top1"]))
    summary = {}
    for name, _ in found:
        runs = [figures[name][s] for s in seeds]
        summary[name] = dict((key, _mean_spread([r[key] for r in runs])) for key in ("heads_per_s", "head_epochs_per_s",
                                                                                     "val_top1"))
        print("%s: %.4f heads/s, %.3f head-epochs/s, out-of-fold val top-1 %.4f +- %.4f (mean +- sd over %d seeds)"
              % (name, summary[name]["heads_per_s"][0], summary[name]["head_epochs_per_s"][0],
                 summary[name]["val_top1"][0], summary[name]["val_top1"][1], len(seeds)))
    for name, base in [(n, "one at a time") for n, _ in found[1:]] + [(n, "together float32") for n, _ in found[2:]]:
        print("%s / %s: %.2fx heads/s, %.2fx head-epochs/s; val top-1 difference %+.4f"
              % (name, base, summary[name]["heads_per_s"][0] / summary[base]["heads_per_s"][0],
                 summary[name]["head_epochs_per_s"][0] / summary[base]["head_epochs_per_s"][0],
                 summary[name]["val_top1"][0] - summary[base]["val_top1"][0]))


@task(help={"model": "registry name whose embeddings the workspace has", "seeds": "seeds (runs per path)",
            "column": "the fold column whose 5 heads are trained", "step": "step4 (or step6/step7: needs their pseudo set)",
            "epochs": "default: the profile's", "patience": "default: the profile's",
            "profile": "quick, faithful or smoke (invoke.yaml profiles)", "runner": "local, docker or auto",
            "workspace": "workspace folder with the model's embeddings and folds.csv"})
def heads(c, model="model4_insightface", seeds=3, column="rt0", step="step4", epochs=None, patience=None,
          profile=None, runner=None, workspace=None):
    """Heads/s one at a time vs together (batched) on the same embeddings, interleaved, and their
    validation accuracy over SEEDS seeds (mean and spread)."""
    model, column, step = arguments.model(model), arguments.column(column), arguments.step(step)
    seeds = arguments.integer(seeds, "--seeds")
    ctx = context.from_task(c, workspace, runner, profile)
    _, args = head_job(ctx, model, step)
    args = args[:args.index("--out")] + args[args.index("--out") + 2:]
    for flag, value in (("--columns", column), ("--epochs", epochs), ("--patience", patience)):
        if value is not None:
            args[args.index(flag) + 1] = value
    chosen = [ctx.seed + i for i in range(int(seeds))]
    root = os.path.join(ctx.paths["bench"], "heads", model)
    print("bench.heads: %s %s column %s, %s, %d CPUs, load %s"
          % (model, step, column, " ".join(str(a) for a in args[args.index("--epochs"):args.index("--seed")]),
             hardware.available_cpus(), " ".join("%.1f" % v for v in os.getloadavg())))
    print("CPU: %s; auto training dtype: %s (%s)" % (hardware.describe(), *hardware.matmul_dtype("auto")))
    found = paths()
    figures = dict((name, {}) for name, _ in found)
    for i, seed in enumerate(chosen):  # interleaved, the order alternating so that drift in load cancels
        for name, extra in (found if i % 2 == 0 else found[::-1]):
            run_args = list(args) + extra
            run_args[run_args.index("--seed") + 1] = seed
            figures[name][seed] = run_one(ctx, run_args, os.path.join(root, "%s-%d" % (name.replace(" ", "-"), seed)))
    report(figures, chosen, found)
