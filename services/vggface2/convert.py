"""A Caffe network (the .prototxt as prototxt.py reads it + the weights as the backend loaded them)
-> an OpenVINO graph, built with OpenVINO's opset API (the `openvino` engine, shared/models/engines.py).

Which route: OpenVINO dropped its Caffe frontend, and an ONNX detour would need a Caffe->ONNX
converter of its own plus an onnx pin. The definition is already parsed here, the backend
(pycaffe or OpenCV's importer) has already read the .caffemodel, and the layer set of these
models is small, so the graph is built directly, layer by layer in the definition's order
(in-place layers rebind their blob, as Caffe does); any other layer type is refused by name.
Python-2.7 compatible (vermin checks this folder), although OpenVINO itself needs Python 3.
"""
from __future__ import absolute_import, division, print_function

import numpy as np

import prototxt

CONVERTER_VERSION = "caffe-prototxt-ov-1"  # bump when the graph this builds changes


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text  # true/false, enum names


def _param(layer, message, key, default):
    found = [prototxt.values(m, key) for m in prototxt.values(layer, message)]
    found = found[0] if found else []
    return [_number(v) for v in found] if found else default


def _pair(layer, message, key, default):
    """Caffe's kernel/pad/stride: `key_size`/`key` (one or two values) or key_h + key_w."""
    both = _param(layer, message, key, None)
    height, width = _param(layer, message, key + "_h", None), _param(layer, message, key + "_w", None)
    if height and width:
        return [height[0], width[0]]
    if both:
        return both * 2 if len(both) == 1 else both
    return [default, default]


class CaffeGraph(object):
    def __init__(self, ops, blobs):
        self.ops, self.blobs = ops, blobs  # blobs(layer name) -> list of numpy arrays

    def const(self, array):
        return self.ops.constant(np.asarray(array, np.float32))

    def channelwise(self, array, rank):
        flat = np.asarray(array, np.float64).ravel()
        return self.const(flat.reshape([1, len(flat)] + [1] * (rank - 2)))

    def convolution(self, x, layer, name):
        ops, blobs = self.ops, self.blobs(name)
        kernel = _pair(layer, "convolution_param", "kernel_size", None)
        if kernel == [None, None]:
            kernel = _pair(layer, "convolution_param", "kernel", None)
        stride = _pair(layer, "convolution_param", "stride", 1)
        pad = _pair(layer, "convolution_param", "pad", 0)
        dilation = _pair(layer, "convolution_param", "dilation", 1)
        groups = _param(layer, "convolution_param", "group", [1])[0]
        weight = np.asarray(blobs[0], np.float64)
        if groups == 1:
            y = ops.convolution(x, self.const(weight), stride, pad, pad, dilation)
        else:
            grouped = weight.reshape((groups, weight.shape[0] // groups) + weight.shape[1:])
            y = ops.group_convolution(x, self.const(grouped), stride, pad, pad, dilation)
        if _param(layer, "convolution_param", "bias_term", ["true"])[0] in ("true", 1) and len(blobs) > 1:
            y = ops.add(y, self.channelwise(blobs[1], 4))
        return y

    def batch_norm(self, x, layer, name, rank):
        mean, var, factor = [np.asarray(b, np.float64).ravel() for b in self.blobs(name)[:3]]
        factor = 0.0 if factor[0] == 0 else 1.0 / factor[0]  # Caffe stores sums and their weight
        eps = _param(layer, "batch_norm_param", "eps", [1e-5])[0]
        scale = 1.0 / np.sqrt(var * factor + eps)
        y = self.ops.multiply(x, self.channelwise(scale, rank))
        return self.ops.add(y, self.channelwise(-mean * factor * scale, rank))

    def scale(self, inputs, layer, name, rank):
        x, axis = inputs[0], _param(layer, "scale_param", "axis", [1])[0]
        if len(inputs) == 2 and axis == 0 and rank == 4:  # prototxt.expand_axpy's: (N, C) weights per image
            return self.ops.multiply(x, self.ops.unsqueeze(inputs[1], self.ops.constant(np.array([2, 3], np.int64))))
        if axis != 1 or len(inputs) != 1:
            raise ValueError("layer '%s': only a Scale over axis 1 with its own weights, or axpy's, "
                             "is supported" % name)
        blobs = self.blobs(name)
        y = self.ops.multiply(x, self.channelwise(blobs[0], rank))
        return self.ops.add(y, self.channelwise(blobs[1], rank)) if len(blobs) > 1 else y

    def pooling(self, x, layer, name):
        ops, kind = self.ops, _param(layer, "pooling_param", "pool", ["MAX"])[0]
        if _param(layer, "pooling_param", "global_pooling", ["false"])[0] == "true":
            reduce = ops.reduce_mean if kind == "AVE" else ops.reduce_max
            return reduce(x, ops.constant(np.array([2, 3], np.int64)), True)
        kernel = _pair(layer, "pooling_param", "kernel_size", None)
        stride = _pair(layer, "pooling_param", "stride", 1)
        pad = _pair(layer, "pooling_param", "pad", 0)
        # Caffe rounds pooled sizes up; averages divide by the padded window
        if kind == "AVE":
            return ops.avg_pool(x, stride, pad, pad, kernel, False, "ceil")
        if kind == "MAX":
            return ops.max_pool(x, stride, [1, 1], pad, pad, kernel, "ceil").output(0)
        raise ValueError("layer '%s': pool %s is not supported" % (name, kind))

    def inner_product(self, x, layer, name):
        blobs = self.blobs(name)
        weight = np.asarray(blobs[0], np.float64)
        x = self.ops.reshape(x, self.ops.constant(np.array([0, -1], np.int64)), True)  # Caffe: axis 1 on
        y = self.ops.matmul(x, self.const(weight.reshape(weight.shape[0], -1)), False, True)
        if _param(layer, "inner_product_param", "bias_term", ["true"])[0] in ("true", 1) and len(blobs) > 1:
            y = self.ops.add(y, self.const(np.asarray(blobs[1]).reshape(1, -1)))
        return y

    def eltwise(self, inputs, layer, name):
        operation = _param(layer, "eltwise_param", "operation", ["SUM"])[0]
        coefficients = _param(layer, "eltwise_param", "coeff", None)
        if operation != "SUM" or coefficients:
            raise ValueError("layer '%s': only Eltwise SUM without coefficients is supported" % name)
        y = inputs[0]
        for other in inputs[1:]:
            y = self.ops.add(y, other)
        return y


def _rank(node):
    return node.get_output_partial_shape(0).rank.get_length()


def _apply(graph, kind, layer, name, inputs):
    ops, x = graph.ops, inputs[0]
    if kind == "Convolution":
        return graph.convolution(x, layer, name)
    if kind == "BatchNorm":
        return graph.batch_norm(x, layer, name, _rank(x))
    if kind == "Scale":
        return graph.scale(inputs, layer, name, _rank(x))
    if kind == "Reshape":  # Caffe's dims: 0 copies the input's, -1 is inferred, as special_zero
        shape = [int(d) for m in prototxt.values(layer, "reshape_param") for s in prototxt.values(m, "shape")
                 for d in prototxt.values(s, "dim")]
        return ops.reshape(x, ops.constant(np.array(shape, np.int64)), True)
    if kind == "PReLU":
        return ops.prelu(x, graph.channelwise(graph.blobs(name)[0], _rank(x)))
    if kind == "ReLU":
        slope = _param(layer, "relu_param", "negative_slope", [0])[0]
        return ops.prelu(x, graph.const([slope])) if slope else ops.relu(x)
    if kind == "Sigmoid":
        return ops.sigmoid(x)
    if kind == "Pooling":
        return graph.pooling(x, layer, name)
    if kind == "InnerProduct":
        return graph.inner_product(x, layer, name)
    if kind == "Eltwise":
        return graph.eltwise(inputs, layer, name)
    if kind == "Flatten":
        return ops.reshape(x, ops.constant(np.array([0, -1], np.int64)), True)
    if kind == "Dropout":
        return x  # inference: the identity
    raise ValueError("layer '%s': Caffe layer type '%s' is not supported by the converter" % (name, kind))


def build(definition, blobs, blob, height, width):
    """definition: the parsed .prototxt; blobs(layer name) -> its weight arrays; blob: the output
    blob (its last writer's value). -> an openvino.Model, input (N, 3, H, W)."""
    import openvino as ov
    import openvino.opset13 as ops

    graph = CaffeGraph(ops, blobs)
    source = prototxt.input_name(definition)
    data = ops.parameter([-1, 3, height, width], np.float32, name=source)
    values, writer = {source: data}, prototxt.producers(definition)
    if blob not in writer:
        raise ValueError("the network has no blob '%s'" % blob)
    names = [prototxt.values(layer, "name")[0] for layer in prototxt.layers(definition)]
    for layer in prototxt.layers(definition)[:names.index(writer[blob]) + 1]:  # what the blob needs
        kind, name = prototxt.values(layer, "type")[0], prototxt.values(layer, "name")[0]
        if kind == "Input":
            continue
        inputs = [values[b] for b in prototxt.values(layer, "bottom")]
        (top,) = prototxt.values(layer, "top")
        values[top] = _apply(graph, kind, layer, name, inputs)
    return ov.Model([values[blob]], [data], "caffe")
