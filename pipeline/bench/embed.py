"""`invoke bench.embed`: embedding speed of every present model, through its service (each engine
it accepts) and as a bare-framework loop beside it, against the machine's FP32 roofline.

Every system embeds the same LFW crops in its own processes; systems take turns (round-robin,
after one untimed warm-up round on one batch) so that a busy machine slows them alike, and the
median over rounds is printed. Images per CPU-second count the children's CPU time
(getrusage(RUSAGE_CHILDREN) deltas: process start, model load, image reading, every forward);
the bare loops also report their own steady-state figure (the loop without its first batch).
"""
import os
import resource
import shutil
import subprocess
import sys
import time

from invoke import task

from pipeline import context
from pipeline.common import fail
from shared import hardware
from shared.bench import roofline
from shared.models.registry import is_onnx
from shared.running import settings as settings_mod
from shared.running.runner import ServiceError

# The bare loops beside each family's service: (label, environment). MXNet's fused setting is
# the service's (services/insightface/embed.py: the FC pass left out, or the second forward fails).
BARE = {"insightface": [("bare MXNet fused", {"MXNET_SUBGRAPH_BACKEND": "MKLDNN", "MXNET_DISABLE_MKLDNN_FC_OPT": "1"}),
                        ("bare MXNet unfused", {"MXNET_SUBGRAPH_BACKEND": "NONE"})],
        "vggface2": [("bare OpenCV-dnn", {})],
        "dlib": [("bare dlib", {})]}


def present_models(ctx, names=None):
    """Registry entries whose weight files are present (as `invoke weights.check` says)."""
    from pipeline.weights import PRESENT, model_status

    entries = [ctx.registry.model(name) for name in (names or ctx.registry.names())]
    return [(entry, folder) for entry, (status, folder, _) in
            ((e, model_status(e, ctx.weights_root)) for e in entries) if status == PRESENT]


def prepare_crops(ctx, crops_needed, count):
    """The first `count` LFW crops (sorted names) at every crop size needed; {crop: dir}, list files."""
    from shared.faces.crops import derive_prealigned
    from shared.storage import write_text

    source = os.path.join(os.path.dirname(settings_mod.under(ctx.config["data_dir"], ctx.config["bench"]["pairs"])),
                          "images")
    names = sorted(os.path.relpath(os.path.join(top, f), source) for top, _, files in os.walk(source) for f in files)
    if len(names) < count:
        fail("%s has %d images, fewer than --count %d" % (source, len(names), count))
    names = names[:count]
    root = os.path.join(ctx.paths["bench"], "embed")
    dirs = dict((crop, os.path.join(root, "crops", crop)) for crop in crops_needed)
    derive_prealigned(source, names, dirs)
    lists = {}
    for label, subset in (("all", names), ("warm-up", names[:ctx.config["bench"]["batch_size"]])):
        lists[label] = os.path.join(root, "%s.txt" % label)
        write_text(lists[label], "".join(n + "\n" for n in subset))
    return root, dirs, lists


def service_engines(python, family):
    """The engines the service's entrypoint offers (its --help), native first, each as (engine,
    precision): openvino in f32 and, where this CPU has bf16 kernels (shared/hardware.py), bf16."""
    script = os.path.join(settings_mod.ROOT, "services", family, "embed.py")
    text = subprocess.run([python, script, "--help"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=settings_mod.ROOT)).stdout
    found = [("native", None)]
    if "--engine" in text and "openvino" in text:
        found += [("openvino", p) for p in (["bf16"] if hardware.bf16_kernels()[0] else []) + ["f32"]]
    return found, "--engine-cache" in text


def systems(ctx, entry, root, dirs, engines):
    """The systems that embed one model: (label, run(list_path) -> bare loop's JSON or None)."""
    import json

    family, batch = entry["family"], ctx.config["bench"]["batch_size"]
    python = ctx.runner.python(family)
    offered, has_cache = service_engines(python, family)
    found = []
    for engine, precision in [(e, p) for e, p in offered if e in engines]:
        def service(list_path, engine=engine, precision=precision):
            out = os.path.join(root, "runs", entry["name"], engine)
            shutil.rmtree(out, ignore_errors=True)  # never "up to date": every run embeds
            extra = ["--engine", engine] if len(offered) > 1 else []
            extra += ["--precision", precision] if precision else []
            extra += ["--engine-cache", os.path.join(root, "engines")] if has_cache else []
            ctx.runner.run(family, "embed", [
                "--model", entry["name"], "--images", dirs[entry["input"]["crop"]], "--list", list_path,
                "--out", out, "--split", "bench", "--weights-root", ctx.weights_root,
                "--workers", ctx.workers(entry), "--batch-size", batch] + extra)
            shutil.rmtree(out, ignore_errors=True)
        found.append(("service %s" % " ".join(filter(None, (engine, precision))), service))
    if family == "dlib" and entry["options"]["chip"] != "template":
        return found  # dlib's own framing detects and aligns first: no bare loop does that
    if is_onnx(entry):
        return found  # an ONNX file (w600k_mbf, sface): its runtime's loop is the service's own
    for label, env in BARE.get(family, []):
        def bare(list_path, env=env):
            command = [python, "-m", "shared.bench.bare_embed", "--model", entry["name"], "--weights-root",
                       ctx.weights_root, "--images", dirs[entry["input"]["crop"]], "--list", list_path,
                       "--batch-size", str(batch)]
            proc = subprocess.run(command, capture_output=True, text=True, cwd=settings_mod.ROOT,
                                  env=dict(os.environ, PYTHONPATH=settings_mod.ROOT, **env))
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-2000:])
                raise ServiceError(family, proc.returncode, command)
            return json.loads(proc.stdout.strip().splitlines()[-1])
        found.append((label, bare))
    return found


def measured(run, list_path):
    """(result, wall s, children's CPU s) of one run."""
    def children():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    wall, cpu = time.time(), children()
    result = run(list_path)
    return result, time.time() - wall, children() - cpu


def rounds_of(table, lists, rounds):
    """Warm-up, then `rounds` round-robin passes; a system that fails is reported and dropped."""
    import numpy as np

    for step in ["warm-up"] + list(range(rounds)):
        for row in [r for r in table if not r.get("failed")]:
            try:
                result, wall, cpu = measured(row["run"], lists["warm-up" if step == "warm-up" else "all"])
            except ServiceError as exc:
                row["failed"] = "exit code %d (its error is printed above)" % exc.code
                print("%s / %s failed, dropped: %s" % (row["model"], row["system"], row["failed"]))
                continue
            if step != "warm-up":
                row["loop_result"] = result or row.get("loop_result")
                row.setdefault("samples", []).append((wall, cpu, (result or {}).get("cpu_s"),
                                                      (result or {}).get("images")))
        print("round %s done (%s)" % (step, time.strftime("%H:%M:%S")))
    for row in table:
        samples = np.array([s[:2] for s in row.get("samples", [])])
        if len(samples):
            row["wall"], row["cpu"] = np.median(samples[:, 0]), np.median(samples[:, 1])
        row["loop"] = loop_figure(row.get("samples", []))


def loop_figure(samples):
    """The bare loop's own median images per CPU-second (None for a service)."""
    import numpy as np

    values = [images / cpu for _, _, cpu, images in samples if cpu]
    return float(np.median(values)) if values else None


def print_table(table, peak):
    """One line per system: speed, images per CPU-second, FLOP, share of one core's peak, ratio
    to the model's native service."""
    flops = dict((row["model"], row["loop_result"]["flops_per_image"]) for row in table
                 if (row.get("loop_result") or {}).get("flops_per_image"))
    header = ("model", "system", "img/s", "img/CPU-s", "loop img/CPU-s", "GFLOP/img", "roofline", "x service")
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for row in table:
        if "cpu" not in row:
            print("| %s | %s | failed: %s |" % (row["model"], row["system"], row.get("failed", "no samples")))
            continue
        service = [r for r in table if r["model"] == row["model"] and r["system"] == "service native" and "cpu" in r]
        per_cpu = row["images"] / row["cpu"]
        flop = flops.get(row["model"])
        cells = [row["model"], row["system"], "%.1f" % (row["images"] / row["wall"]), "%.1f" % per_cpu,
                 "%.1f" % row["loop"] if row.get("loop") else "-", "%.3f" % (flop / 1e9) if flop else "n/a",
                 "%.1f%%" % (100 * per_cpu * flop / (peak["per_core_gflops"] * 1e9)) if flop else "n/a",
                 "%.2f" % (per_cpu / (service[0]["images"] / service[0]["cpu"])) if service else "-"]
        print("| " + " | ".join(cells) + " |")
    for row in table:  # the figure the services aim at: within 10% of the framework's own loop
        service = [r for r in table if r["model"] == row["model"] and r["system"] == "service native" and "cpu" in r]
        if row["system"].startswith("bare") and "cpu" in row and service:
            print("%s: service native / %s = %.2f in images per CPU-second"
                  % (row["model"], row["system"], row["cpu"] / service[0]["cpu"]))


@task(help={"models": "comma-separated registry names (default: every model whose weights are present)",
            "engines": "service engines to measure where the service offers them (default: native,openvino)",
            "rounds": "timed round-robin rounds (the median is printed)", "count": "LFW crops per run",
            "runner": "local only: CPU time is counted for child processes, which a container is not",
            "workspace": "workspace folder"})
def embed(c, models=None, engines="native,openvino", rounds=3, count=512, runner="local", workspace=None):
    """Images/s and images per CPU-second of every present model: its service per engine and a bare
    framework loop beside it, interleaved in one run, against the machine's FP32 roofline."""
    ctx = context.from_task(c, workspace, runner)
    if ctx.runner.name != "local":
        fail("bench.embed measures the CPU time of child processes; run it with --runner local")
    present = present_models(ctx, models.split(",") if models else None)
    if not present:
        fail("no model has its weights present (see `invoke weights.check`)")
    peak = roofline.roofline(subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout)
    print("roofline: %.1f GFLOP/s FP32 = %s; %s" % (peak["gflops"], peak["how"], peak["model"]))
    print("CPU: %s; bf16 kernels: %s (%s)" % (hardware.describe(), *hardware.bf16_kernels()))
    print("load at start: %s" % subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    root, dirs, lists = prepare_crops(ctx, sorted(set(e["input"]["crop"] for e, _ in present)), int(count))
    table = [{"model": entry["name"], "system": label, "run": run}
             for entry, _ in present for label, run in systems(ctx, entry, root, dirs, engines.split(","))]
    rounds_of(table, lists, int(rounds))
    for row in table:
        row["images"] = int(count)
    print("load at end: %s" % subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("%d crops per run, %d rounds (median), batch %d; img/CPU-s: the children's CPU time of the whole run; "
          "loop: the bare loop's own count without its first batch; roofline: img/CPU-s x FLOP/img over one "
          "core's peak (%.1f GFLOP/s)" % (int(count), int(rounds), ctx.config["bench"]["batch_size"],
                                         peak["per_core_gflops"]))
    print_table(table, peak)
    print_verifications(os.path.join(root, "engines"))


def print_verifications(cache):
    """Each cached conversion's inference precision and its check against the native framework."""
    import json

    for base, _, files in sorted(os.walk(cache)):
        if "meta.json" in files:
            meta = json.load(open(os.path.join(base, "meta.json")))
            check = meta["verification"]
            print("%s: openvino %s against native: cosine min %.6f / mean %.6f over %d crops (threshold %s)"
                  % (meta["model"], meta["compile"]["INFERENCE_PRECISION_HINT"], check["min_cosine"],
                     check["mean_cosine"], check["images"], check["threshold"]))
