"""shared/hardware.py: the CPU-dependent speed choices, on the flag sets of the machines of this
kind (Zen 3: no AVX-512; Zen 4/5: AVX512-BF16; Xeon: AMX) and on this machine's own CPU."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from shared import hardware

ZEN3 = {"avx2", "fma"}
ZEN4 = ZEN3 | {"avx512f", "avx512_bf16"}
XEON_AMX_ONLY = ZEN3 | {"avx512f", "amx_bf16"}  # AMX without AVX512-BF16: only an AMX-level oneDNN uses it


@pytest.mark.parametrize("flags, environ, expected", [
    (ZEN3, {}, "float32"),
    (ZEN4, {}, "bfloat16"),
    (ZEN4, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "float32"),
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32"),
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "avx512_core"}, "float32"),
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "bfloat16"),
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "ALL"}, "bfloat16"),
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "NO_SUCH_ISA"}, "float32"),
    (XEON_AMX_ONLY, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "float32"),
    (XEON_AMX_ONLY, {}, "bfloat16"),
])
def test_auto_is_bfloat16_only_where_onednn_has_bf16_kernels(flags, environ, expected):
    chosen, why = hardware.matmul_dtype("auto", environ, flags)
    assert chosen == expected and why.startswith("auto: ")


def test_a_forced_dtype_is_kept_unless_onednn_would_abort():
    assert hardware.matmul_dtype("float32", {}, ZEN4)[0] == "float32"
    assert hardware.matmul_dtype("bfloat16", {}, ZEN3)[0] == "bfloat16"  # slow (Eigen), but it runs
    assert hardware.matmul_dtype("bfloat16", {"TF_ENABLE_ONEDNN_OPTS": "0"}, ZEN4)[0] == "bfloat16"
    with pytest.raises(ValueError, match="ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN below AVX512_CORE_BF16"):
        hardware.matmul_dtype("bfloat16", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, ZEN4)
    with pytest.raises(ValueError, match="train_matmul must be"):
        hardware.matmul_dtype("float16", {}, ZEN4)


def test_this_cpu_is_read_from_proc_cpuinfo():
    name, flags = hardware.cpu_info()
    listed = open("/proc/cpuinfo").read()
    assert name.split(" (family")[0] in listed and "sse2" in flags
    assert hardware.describe()["bf16_flags"] == [f for f in ("avx512_bf16", "amx_bf16") if f in flags]


def test_threads_follow_the_cpus_this_process_may_use():
    assert hardware.available_cpus() == len(os.sched_getaffinity(0))
    code = "from shared import hardware; print(hardware.available_cpus())"
    found = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert found.returncode == 0 and found.stdout.strip() == "1", found.stdout + found.stderr


def test_auto_embed_workers_are_the_cpus_this_process_may_use():
    from pipeline.context import RunContext
    from shared.running import settings as settings_mod

    config = settings_mod.load()
    ctx = RunContext(config, "local", "quick")
    dlib = ctx.registry.model("model5_dlib")
    assert config["workers"]["dlib"] == "auto" and ctx.workers(dlib) == len(os.sched_getaffinity(0))
    config["workers"]["dlib"] = 3
    assert ctx.workers(dlib) == 3
    config["workers"]["dlib"] = "many"
    with pytest.raises(ValueError, match="workers.dlib must be auto or a count >= 1, not 'many'"):
        ctx.workers(dlib)
