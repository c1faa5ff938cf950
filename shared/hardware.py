"""What this machine's CPU can do, read at run time: the speed settings that depend on it (the
heads' training matmul dtype, OpenVINO's inference precision, thread counts) are chosen from
here, never from the machine the code was tuned on. Machines of one kind differ: AMD Zen 3 has
no AVX-512, Zen 4 has AVX512-BF16, Intel Xeons add AMX.

bfloat16 pays only where oneDNN has native bf16 kernels: the CPU has AVX512-BF16 (or AMX-BF16)
and oneDNN is neither off nor capped below that ISA by ONEDNN_MAX_CPU_ISA. Measured (issue 26):
with TensorFlow's oneDNN off bf16 trains 2x slower than float32, and with oneDNN capped at AVX2
it aborts the process. Python-2.7 compatible (the Caffe service imports shared/models/engines.py).
"""
from __future__ import absolute_import, division, print_function

import os

CPUINFO = "/proc/cpuinfo"
# oneDNN's ISA levels, lowest first (ONEDNN_MAX_CPU_ISA values; DNNL_MAX_CPU_ISA is the old name)
ISA_LEVELS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
              "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16")
# a /proc/cpuinfo flag that gives bf16 kernels -> the lowest oneDNN ISA level that uses it
BF16_FLAGS = (("avx512_bf16", "AVX512_CORE_BF16"), ("amx_bf16", "AVX512_CORE_AMX"))
MATMUL_CHOICES = ("auto", "bfloat16", "float32")


def cpu_info(path=CPUINFO):
    """(model name with its family and model numbers, set of flags) of the first CPU in
    /proc/cpuinfo (a virtual machine's model name may be a bare 'AMD EPYC'); ('unknown', empty)
    elsewhere."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key and fields:  # the first CPU's block ends
                    break
                fields.setdefault(key, value.strip())
    except (IOError, OSError):
        pass
    name = " ".join(fields.get("model name", "unknown").split())
    if "cpu family" in fields:
        name += " (family %s, model %s)" % (fields["cpu family"], fields.get("model", "?"))
    return name, set(fields.get("flags", "").split())


def available_cpus():
    """The CPUs this process may run on (its affinity: a container's or taskset's share), not
    the machine's count."""
    affinity = getattr(os, "sched_getaffinity", None)  # Python 3 on Linux
    if affinity is not None:
        return max(1, len(affinity(0)))
    import multiprocessing

    return multiprocessing.cpu_count()


def onednn_cap(environ=None):
    """The ISA level ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) caps oneDNN at; None when uncapped."""
    environ = os.environ if environ is None else environ
    value = (environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return None if value in ("", "ALL", "DEFAULT") else value


def bf16_kernels(environ=None, flags=None):
    """(True, why) where oneDNN has native bf16 kernels on this CPU, else (False, why)."""
    flags = cpu_info()[1] if flags is None else flags
    present = [(flag, level) for flag, level in BF16_FLAGS if flag in flags]
    if not present:
        return False, "the CPU has neither %s" % " nor ".join(flag for flag, _ in BF16_FLAGS)
    cap = onednn_cap(environ)
    if cap is None:
        return True, "the CPU has %s" % ", ".join(flag for flag, _ in present)
    if cap not in ISA_LEVELS:
        return False, "ONEDNN_MAX_CPU_ISA=%s is not an ISA level oneDNN knows" % cap
    usable = [flag for flag, level in present if ISA_LEVELS.index(cap) >= ISA_LEVELS.index(level)]
    if not usable:
        return False, "ONEDNN_MAX_CPU_ISA=%s caps oneDNN below %s" % (cap, present[0][1])
    return True, "the CPU has %s (ONEDNN_MAX_CPU_ISA=%s)" % (", ".join(usable), cap)


def tensorflow_onednn(environ=None):
    """(True, why) unless TF_ENABLE_ONEDNN_OPTS turns TensorFlow's oneDNN kernels off (they are on
    by default on x86 Linux since TensorFlow 2.9)."""
    environ = os.environ if environ is None else environ
    value = environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    if value in ("0", "false"):
        return False, "TF_ENABLE_ONEDNN_OPTS=%s turns TensorFlow's oneDNN off" % value
    return True, "TensorFlow's oneDNN on"


def matmul_dtype(requested, environ=None, flags=None, onednn=None):
    """The heads' training matmul dtype for `requested` (auto, bfloat16, float32) and why: auto is
    bfloat16 where TensorFlow's oneDNN has native bf16 kernels on this CPU, else float32. A forced
    bfloat16 that oneDNN would abort on (bf16 CPU, oneDNN capped below it) is refused. `onednn`:
    (on, why) of the installed TensorFlow, default tensorflow_onednn(environ)."""
    if requested not in MATMUL_CHOICES:
        raise ValueError("train_matmul must be %s, not %r" % (" or ".join(MATMUL_CHOICES), requested))
    onednn, onednn_why = onednn or tensorflow_onednn(environ)
    kernels, kernels_why = bf16_kernels(environ, flags)
    if requested == "float32":
        return "float32", "forced float32 (%s; %s)" % (kernels_why, onednn_why)
    if requested == "bfloat16":
        capped = onednn and not kernels and onednn_cap(environ) is not None and bf16_kernels({}, flags)[0]
        if capped:
            raise ValueError("train_matmul bfloat16: %s, where TensorFlow aborts on bf16 matmuls; use auto or float32"
                             % kernels_why)
        return "bfloat16", "forced bfloat16 (%s; %s)" % (kernels_why, onednn_why)
    if onednn and kernels:
        return "bfloat16", "auto: %s and %s" % (kernels_why, onednn_why)
    return "float32", "auto: %s" % (kernels_why if not kernels else onednn_why)


def describe(environ=None):
    """What the benchmarks print beside each figure: CPU model, bf16 flags, oneDNN cap, CPUs."""
    environ = os.environ if environ is None else environ
    name, flags = cpu_info()
    present = [flag for flag, _ in BF16_FLAGS if flag in flags]
    return {"cpu": name, "bf16_flags": present, "avx512f": "avx512f" in flags, "cpus": available_cpus(),
            "onednn_max_cpu_isa": onednn_cap(environ), "tf_enable_onednn_opts": environ.get("TF_ENABLE_ONEDNN_OPTS")}
