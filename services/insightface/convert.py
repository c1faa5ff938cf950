"""An MXNet checkpoint (symbol JSON + params) -> an OpenVINO graph, built directly with OpenVINO's
opset API (the `openvino` engine, shared/models/engines.py).

Why not MXNet's ONNX exporter: as shipped (MXNet 1.9.1) it needs an onnx release that still has
`onnx.mapping`, exports y1's FullyConnected on a 4-D input as Flatten(axis=-1) (so Gemm fails),
gives PReLU slopes shape (C,) (applied on the wrong axis) and lists every weight as a graph
input (no constant folding). Each would need a patch on the exported graph. Reading the symbol
ourselves avoids all four by construction: FullyConnected flattens to (N, -1) as MXNet does,
slopes are (1, C, 1, 1), weights are constants; and no onnx pin is needed. The layer set of
InsightFace checkpoints is small; any other op is refused by name, never guessed.
"""
import json

import numpy as np

CONVERTER_VERSION = "insightface-symbol-ov-1"  # bump when the graph this builds changes
MXNET_BN_EPS = 1e-3  # MXNet's BatchNorm defaults: eps 0.001, fix_gamma True
SCALAR_OPS = {"_minus_scalar": "subtract", "_plus_scalar": "add", "_mul_scalar": "multiply",
              "_div_scalar": "divide"}


def _tuple(attrs, key, default):
    text = attrs.get(key)
    return default if text is None else [int(v) for v in text.strip("()[] ").split(",") if v.strip()]


def _true(attrs, key, default):
    return str(attrs.get(key, default)).lower() in ("true", "1")


class SymbolGraph(object):
    """Builds the graph node by node in the symbol's (topological) order."""

    def __init__(self, ops, params, height, width):
        self.ops, self.params = ops, params
        self.shape = [-1, 3, height, width]  # any batch size

    def const(self, array):
        return self.ops.constant(np.asarray(array, np.float32))

    def param(self, name):
        if name not in self.params:
            raise ValueError("the params file has no '%s'" % name)
        return np.asarray(self.params[name], np.float64)

    def channelwise(self, x, array):
        rank = x.get_output_partial_shape(0).rank.get_length()
        return self.const(np.reshape(array, [1, len(array)] + [1] * (rank - 2)))

    def convolution(self, x, names, attrs):
        ops, weight = self.ops, self.param(names[1])
        kernel = _tuple(attrs, "kernel", None)
        stride = _tuple(attrs, "stride", [1] * len(kernel))
        pad = _tuple(attrs, "pad", [0] * len(kernel))
        dilate = _tuple(attrs, "dilate", [1] * len(kernel))
        groups = int(attrs.get("num_group", 1))
        if groups == 1:
            y = ops.convolution(x, self.const(weight), stride, pad, pad, dilate)
        else:
            grouped = weight.reshape((groups, weight.shape[0] // groups) + weight.shape[1:])
            y = ops.group_convolution(x, self.const(grouped), stride, pad, pad, dilate)
        if not _true(attrs, "no_bias", False):
            y = ops.add(y, self.channelwise(y, self.param(names[2])))
        return y

    def batch_norm(self, x, names, attrs):
        """Folded to x * scale + shift in float64 (OpenVINO fuses it into the convolution)."""
        gamma, beta, mean, var = [self.param(n) for n in names[1:5]]
        if _true(attrs, "fix_gamma", True):
            gamma = np.ones_like(gamma)  # MXNet ignores the stored gamma then
        scale = gamma / np.sqrt(var + float(attrs.get("eps", MXNET_BN_EPS)))
        y = self.ops.multiply(x, self.channelwise(x, scale))
        return self.ops.add(y, self.channelwise(x, beta - mean * scale))

    def leaky_relu(self, x, names, attrs):
        kind = attrs.get("act_type", "leaky")
        if kind == "prelu":
            return self.ops.prelu(x, self.channelwise(x, self.param(names[1])))
        if kind == "leaky":
            return self.ops.prelu(x, self.const([float(attrs.get("slope", 0.25))]))
        raise ValueError("LeakyReLU act_type '%s' is not supported" % kind)

    def activation(self, x, names, attrs):
        kind = attrs["act_type"]
        if kind not in ("relu", "sigmoid", "tanh"):
            raise ValueError("Activation act_type '%s' is not supported" % kind)
        return getattr(self.ops, kind)(x)

    def pooling(self, x, names, attrs):
        ops, kind = self.ops, attrs.get("pool_type", "max")
        if _true(attrs, "global_pool", False):
            reduce = ops.reduce_mean if kind == "avg" else ops.reduce_max
            return reduce(x, ops.constant(np.array([2, 3], np.int64)), True)
        kernel = _tuple(attrs, "kernel", None)
        stride = _tuple(attrs, "stride", [1] * len(kernel))
        pad = _tuple(attrs, "pad", [0] * len(kernel))
        rounding = "ceil" if attrs.get("pooling_convention", "valid") == "full" else "floor"
        if kind == "avg":
            exclude_pad = not _true(attrs, "count_include_pad", True)
            return ops.avg_pool(x, stride, pad, pad, kernel, exclude_pad, rounding)
        if kind == "max":
            return ops.max_pool(x, stride, [1] * len(kernel), pad, pad, kernel, rounding).output(0)
        raise ValueError("Pooling pool_type '%s' is not supported" % kind)

    def flatten(self, x, names=None, attrs=None):
        return self.ops.reshape(x, self.ops.constant(np.array([0, -1], np.int64)), True)

    def fully_connected(self, x, names, attrs):
        if _true(attrs, "flatten", True):  # MXNet's default: (N, ...) -> (N, -1); y1 relies on it
            x = self.flatten(x)
        y = self.ops.matmul(x, self.const(self.param(names[1])), False, True)
        if not _true(attrs, "no_bias", False):
            y = self.ops.add(y, self.const(self.param(names[2])[None]))
        return y

    def scalar(self, x, op, attrs):
        return getattr(self.ops, SCALAR_OPS[op])(x, self.const([float(attrs["scalar"])]))


LAYERS = {"Convolution": "convolution", "BatchNorm": "batch_norm", "LeakyReLU": "leaky_relu",
          "Activation": "activation", "Pooling": "pooling", "FullyConnected": "fully_connected",
          "Flatten": "flatten"}


def build(symbol, params, layer, height, width):
    """symbol: the parsed symbol JSON; params: {name: array} (arg and aux, without prefixes);
    layer: the output node's name. -> an openvino.Model, input `data` (N, 3, H, W)."""
    import openvino as ov
    import openvino.opset13 as ops

    graph, nodes = SymbolGraph(ops, params, height, width), symbol["nodes"]
    names = [n["name"] for n in nodes]
    if layer not in names:
        raise ValueError("the symbol has no layer '%s'" % layer)
    data = ops.parameter(graph.shape, np.float32, name="data")
    built = {}
    for index, node in enumerate(nodes[:names.index(layer) + 1]):
        op, attrs = node["op"], node.get("attrs", node.get("attr", node.get("param"))) or {}
        inputs = [built.get(i) for i, _, _ in node["inputs"]]
        if op == "null":
            built[index] = data if node["name"] == "data" else None  # weights: read by name below
        elif op in LAYERS:
            built[index] = getattr(graph, LAYERS[op])(inputs[0], [names[i] for i, _, _ in node["inputs"]], attrs)
        elif op in ("elemwise_add", "_Plus", "_plus", "broadcast_add"):
            built[index] = ops.add(inputs[0], inputs[1])
        elif op in SCALAR_OPS:
            built[index] = graph.scalar(inputs[0], op, attrs)
        elif op == "Dropout":
            built[index] = inputs[0]  # inference: the identity
        else:
            raise ValueError("layer '%s': MXNet op '%s' is not supported by the converter" % (node["name"], op))
    return ov.Model([built[names.index(layer)]], [data], "insightface")


def read_checkpoint(symbol_path, params_path):
    """(parsed symbol JSON, {name: numpy array}) with MXNet's own reader of the params file."""
    import mxnet as mx

    with open(symbol_path) as f:
        symbol = json.load(f)
    params = dict((key.split(":", 1)[1], value.asnumpy()) for key, value in mx.nd.load(params_path).items())
    return symbol, params
