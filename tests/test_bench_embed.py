"""The pure figures of `invoke bench.embed` (shared/bench/roofline.py): FLOP counts of the real
networks and the FP32 peak read from `lscpu` text."""
import json
import os
import sys

import pytest

from conftest import ROOT, WEIGHTS, require
from shared.bench import roofline

sys.path.insert(0, os.path.join(ROOT, "services", "vggface2"))
import prototxt  # noqa: E402

Y1 = os.path.join(WEIGHTS, "insightface", "model-y1-test2", "model-symbol.json")
CAFFE = os.path.join(WEIGHTS, "caffe-mobilefacenet", "mobilefacenet-v0.prototxt")

# Excerpts of real `lscpu` outputs (the fields the roofline reads, plus neighbours).
ZEN4_VM = """Architecture:                            x86_64
CPU(s):                                  2
Vendor ID:                               AuthenticAMD
Model name:                              AMD EPYC
CPU family:                              25
Model:                                   17
Thread(s) per core:                      1
Core(s) per socket:                      2
Socket(s):                               1
BogoMIPS:                                5192.27
Flags:                                   fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl
"""
ZEN3 = """Vendor ID:                AuthenticAMD
Model name:               AMD EPYC 7B13
CPU family:               25
Thread(s) per core:       2
Core(s) per socket:       4
Socket(s):                1
CPU max MHz:              2450.0000
BogoMIPS:                 4900.00
Flags:                    fpu sse sse2 fma avx avx2
"""
XEON = """Vendor ID:                GenuineIntel
Model name:               Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
CPU family:               6
Thread(s) per core:       2
Core(s) per socket:       20
Socket(s):                2
CPU max MHz:              3900.0000
BogoMIPS:                 5000.00
Flags:                    fpu sse sse2 fma avx avx2 avx512f avx512cd
"""


@pytest.mark.parametrize("text,cores,ghz,per_cycle", [
    (ZEN4_VM, 2, 2.59614, 32),  # Zen 4 runs AVX-512 on 256-bit units; no clock but BogoMIPS in a VM
    (ZEN3, 4, 2.45, 32),  # physical cores, not threads; the max MHz
    (XEON, 40, 2.5, 64),  # two sockets; the nominal clock of the model name, not the turbo
])
def test_roofline_from_lscpu(text, cores, ghz, per_cycle):
    peak = roofline.roofline(text)
    assert (peak["cores"], peak["flop_per_cycle"]) == (cores, per_cycle)
    assert peak["ghz"] == pytest.approx(ghz, rel=1e-4)
    assert peak["gflops"] == pytest.approx(cores * ghz * per_cycle, rel=1e-4)


def test_roofline_without_a_clock_is_refused():
    with pytest.raises(ValueError, match="no clock"):
        roofline.roofline("Model name: Some CPU\nCore(s) per socket: 2\nFlags: avx2 fma\n")


def test_y1_costs_221_million_macs():
    with open(require(Y1)) as f:
        text = f.read()
    macs = roofline.mxnet_macs(text, "fc1", (3, 112, 112))
    assert macs == pytest.approx(221e6, rel=0.02)
    # pre_fc1, the layer the service keeps out of MXNet's fusion, is 128 x 512 of them
    assert macs - roofline.mxnet_macs(text, "conv_6dw7_7_batchnorm", (3, 112, 112)) == 128 * 512
    # a larger input costs proportionally more in the convolutions
    assert roofline.mxnet_macs(text, "conv_1_conv2d", (3, 224, 224)) == 4 * roofline.mxnet_macs(
        text, "conv_1_conv2d", (3, 112, 112))
    with pytest.raises(ValueError, match="no node 'fc9'"):
        roofline.mxnet_macs(text, "fc9", (3, 112, 112))


def test_caffe_mobilefacenet_counts_as_y1_but_its_last_depthwise_layer():
    """The Caffe MobileFaceNet has y1's layers, but a 7x7 average pooling where y1 has its 7x7
    depthwise convolution: two parsers, two formats, one count (less 512 x 7 x 7)."""
    with open(require(CAFFE)) as f:
        caffe = roofline.caffe_macs(prototxt.parse(f.read()), (3, 112, 112))
    with open(require(Y1)) as f:
        mxnet = roofline.mxnet_macs(f.read(), "fc1", (3, 112, 112))
    assert caffe == mxnet - 512 * 7 * 7


def test_an_op_without_a_shape_rule_is_named():
    nodes = [{"op": "null", "name": "data", "inputs": []},
             {"op": "Reshape", "name": "squash", "attrs": {"shape": "(-1,)"}, "inputs": [[0, 0, 0]]}]
    with pytest.raises(ValueError, match="squash.*Reshape"):
        roofline.mxnet_macs(json.dumps({"nodes": nodes}), "squash", (3, 8, 8))
