"""`invoke bench.ablation`: what each of the original's choices is worth on one benchmark.

Every row is one change from a base profile (invoke.yaml `bench.ablation`) and a whole
`invoke all` run in its own workspace under <workspace>/bench/ablation/, on the same dataset
(hard links to <workspace>/dataset, so every row sees the same draw). The table puts the
heads' out-of-fold validation top-1 (what a user may choose by) beside the test scores (what
the table reports; nothing is chosen from them). A finished row is reused while its settings
are unchanged, so an interrupted ablation resumes at the first unfinished row.
"""
import copy
import os
import re
import shutil

from invoke import task

from pipeline import arguments, context
from pipeline.bench.embed import measured
from pipeline.data import benchmark_stage
from pipeline.workflow import run_pipeline
from shared.method.steps import STEPS
from shared.running.runner import LocalRunner
from shared.storage import read_json, write_json, write_text

COLUMNS = ("row", "val top-1 step4", "val top-1 step7", "MAP@5 step4", "MAP@5 step7", "top-1 step7",
           "unknown P / R step7", "wall s", "CPU s")


def slug(row):
    return re.sub(r"[^a-z0-9]+", "-", row.lower()).strip("-")


def row_settings(config, spec, change, engine=None):
    """The profile a row runs: the base profile with the row's change applied (and --engine)."""
    base = config["profiles"][spec["base"]]
    unknown = sorted(set(change) - set(base) - {"models", "groups"})
    if unknown:
        raise ValueError("invoke.yaml bench.ablation: %s not settings of profile '%s'"
                         % (", ".join(unknown), spec["base"]))
    profile = dict(base, models=spec["models"])
    profile.update(change)
    if engine:
        profile["engine"] = engine
    return profile


def link_dataset(source, target):
    """<target> as hard links to <source>'s files (copies across filesystems); rows never write there."""
    if os.path.isdir(target):
        return

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target + ".tmp", copy_function=link)
    os.rename(target + ".tmp", target)


def finished_row(ctx, spec, row, change, engine):
    """The row's figures from an earlier run with its settings as they are now, else None."""
    result_path = os.path.join(ctx.paths["bench"], "ablation", slug(row), "ablation-row.json")
    if os.path.isfile(result_path) and read_json(result_path)["settings"] == row_settings(ctx.config, spec, change,
                                                                                          engine):
        print("[ablation] %s: finished earlier (%s)" % (row, result_path))
        return dict(read_json(result_path), row=row)
    return None


def run_row(ctx, spec, row, change, engine):
    """One row: its run (or the finished result kept from an earlier one) -> its figures."""
    found = finished_row(ctx, spec, row, change, engine)
    if found:
        return found
    settings = row_settings(ctx.config, spec, change, engine)
    workspace = os.path.join(ctx.paths["bench"], "ablation", slug(row))
    result_path = os.path.join(workspace, "ablation-row.json")
    print("[ablation] %s: %s" % (row, ", ".join("%s=%s" % (k, "(invoke.yaml)" if isinstance(v, dict) else v)
                                                 for k, v in sorted(change.items())) or "the base profile"))
    link_dataset(ctx.paths["dataset"], os.path.join(workspace, "dataset"))
    config = copy.deepcopy(ctx.config)
    config["workspace"], config["engine"] = workspace, None
    config["profiles"]["ablation"] = settings
    row_ctx = context.RunContext(config, ctx.runner_name, "ablation")
    # CPU seconds of the services (child processes) count what the row costs on a shared machine;
    # with the docker runner the containers are not children, so only wall time is kept.
    timings, _, cpu = measured(lambda _: run_pipeline(row_ctx), None)
    local = isinstance(row_ctx.runner, LocalRunner)
    evaluation = read_json(os.path.join(workspace, "reports", "evaluation.json"))
    result = {"row": row, "settings": settings, "wall_s": round(sum(s for _, s in timings), 1),
              "cpu_s": round(cpu, 1) if local else None,
              "timings": timings, "ensemble": evaluation["ensemble"],
              "val_top1": dict((m, dict((s, v[s]["val_top1"]) for s in STEPS if s in v))
                               for m, v in evaluation["models"].items())}
    write_json(result_path, result)
    return result


def _val(result, step):
    """Each trained model's out-of-fold top-1, in the row's model order."""
    found = result["val_top1"]
    models = [m for m in result["settings"]["models"].split(",") if step in found.get(m, {})]
    return " / ".join("%.4f" % found[m][step] for m in models) or "-"


def table(results):
    """The markdown table: one line per row."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        step4, step7 = r["ensemble"]["step4"], r["ensemble"]["step7"]
        cells = [r["row"], _val(r, "step4"), _val(r, "step7"), "%.4f" % step4["map5"], "%.4f" % step7["map5"],
                 "%.4f" % step7["top1"], "%.3f / %.3f" % (step7["unknown_precision"], step7["unknown_recall"]),
                 "%.0f" % r["wall_s"], "-" if r.get("cpu_s") is None else "%.0f" % r["cpu_s"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@task(help={"rows": "comma-separated row names (default: every row of invoke.yaml bench.ablation)",
            "engine": "native or openvino for every row (default: each row's profile)",
            "runner": "local, docker or auto", "workspace": "the benchmark's workspace (its dataset is every row's)"})
def ablation(c, rows=None, engine=None, runner=None, workspace=None):
    """One full run per row of invoke.yaml bench.ablation, each one change from the base profile;
    writes <workspace>/bench/ablation/ablation.md and .json (with --rows: those rows, and the
    others that finished earlier with their current settings)."""
    ctx = context.from_task(c, workspace, runner)
    spec = ctx.config["bench"]["ablation"]
    chosen = arguments.names(rows, list(spec["rows"]), "--rows") if rows else list(spec["rows"])
    if not os.path.isfile(os.path.join(ctx.paths["dataset"], "train.csv")):
        benchmark_stage(ctx)
    # the table: the rows run now, and the other rows finished earlier with their current settings
    results = [(run_row if row in chosen else finished_row)(ctx, spec, row, spec["rows"][row] or {}, engine)
               for row in spec["rows"]]
    results = [r for r in results if r]
    root = os.path.join(ctx.paths["bench"], "ablation")
    write_json(os.path.join(root, "ablation.json"), results)
    text = table(results)
    write_text(os.path.join(root, "ablation.md"), text)
    print(text)
