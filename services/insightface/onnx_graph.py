"""ONNX face models served by the insightface service (registry options.format onnx): InsightFace's
buffalo_s w600k_mbf, OpenCV Zoo's SFace. ONNX Runtime runs them natively; OpenVINO reads the same
file for `--engine openvino` (verified against ONNX Runtime, shared/models/engines.py).

Two faults of shipped files are mended on loading, the same way for both engines:
  - graph inputs the model lists but no node reads (SFace's int8 file keeps its 28 float weights
    as inputs after quantization replaced them): dropped, since a runtime would ask for them;
  - an input fixed at batch 1 (SFace's): its first dimension (and its outputs') is made free,
    and the first batch is checked against the shipped graph one image at a time
    (shared/models/rewrite.py); OpenVINO's copy is reshaped to any batch.
For OpenVINO, whose ONNX reader does not take block-wise DequantizeLinear (opset 21, SFace's
int8 weights), those of constant weights are computed once into float constants, as ONNX Runtime
computes them on every run; the verification against native checks that too.
"""
import os
import shutil
import tempfile

import numpy as np

from shared.models.rewrite import check_batch_rewrite
from shared.schema import EXIT_BACKEND, ContractError

def onnx_file(entry, weights_dir):
    return os.path.join(weights_dir, [n for n in sorted(entry["weights"]["files"]) if n.endswith(".onnx")][0])


def _dequantized(node, values):
    """DequantizeLinear of constant tensors, block-wise or not: (x - zero_point) * scale in float32."""
    from onnx.helper import get_attribute_value

    attrs = dict((a.name, get_attribute_value(a)) for a in node.attribute)
    x = values[node.input[0]].astype(np.float32)
    scale = values[node.input[1]]
    zero = values[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    if scale.ndim:  # per axis, in blocks of block_size along it (1 value per element without blocks)
        axis = attrs.get("axis", 1) % x.ndim
        block = attrs.get("block_size", 0) or 1
        if scale.ndim == 1 and x.ndim > 1:  # per-axis: broadcast along that axis
            shape = [1] * x.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        scale, zero = [np.repeat(t, block, axis=axis).take(range(x.shape[axis]), axis=axis) for t in (scale, zero)]
    return ((x - zero) * scale).astype(np.float32)


def fold_dequantize(model):
    """Replace each DequantizeLinear whose inputs are all initializers by its float result."""
    from onnx import numpy_helper

    values = dict((init.name, numpy_helper.to_array(init)) for init in model.graph.initializer)
    folded = [node for node in model.graph.node if node.op_type == "DequantizeLinear"
              and all(name in values for name in node.input if name)]
    for node in folded:
        model.graph.initializer.append(numpy_helper.from_array(_dequantized(node, values), node.output[0]))
        model.graph.node.remove(node)
    return model


def _free_batch(model):
    """Make a first dimension fixed at 1 free ('N') on the graph's inputs and outputs; whether any was."""
    fixed = [value.type.tensor_type.shape.dim[0] for value in list(model.graph.input) + list(model.graph.output)
             if value.type.tensor_type.shape.dim and value.type.tensor_type.shape.dim[0].dim_value == 1]
    for dim in fixed:
        dim.dim_param = "N"
    return bool(fixed)


def read_mended(path, fold=False, any_batch=False):
    """The model's bytes with the graph inputs no node reads dropped (with `fold`, constant
    DequantizeLinear nodes computed; with `any_batch`, a batch fixed at 1 made free), its real
    input's name and whether its batch was made free."""
    import onnx

    model = onnx.load(path)
    if fold:
        fold_dequantize(model)
    freed = _free_batch(model) if any_batch else False
    read = set(name for node in model.graph.node for name in node.input)
    unused = [graph_input for graph_input in model.graph.input if graph_input.name not in read]
    for graph_input in unused:
        model.graph.input.remove(graph_input)
    initialized = set(init.name for init in model.graph.initializer)
    inputs = [i.name for i in model.graph.input if i.name not in initialized]
    if len(inputs) != 1:
        raise ContractError(EXIT_BACKEND, "%s: a face model takes one image input; this one takes %s" % (path, inputs))
    return model.SerializeToString(), inputs[0], freed


class OnnxRuntimeGraph(object):
    """The model run by ONNX Runtime on CPU; `run(batch)` -> N x D of the registry's output layer."""

    def __init__(self, path, output):
        import onnxruntime

        self.onnxruntime, self.path, self.check = onnxruntime, path, None
        mended, self.input, self.rewritten = read_mended(path, any_batch=True)
        self.session = self._session(mended)
        outputs = [o.name for o in self.session.get_outputs()]
        if output not in outputs:
            raise ContractError(EXIT_BACKEND, "%s has no output '%s' (its outputs: %s)" % (path, output, ", ".join(outputs)))
        self.output = output

    def _session(self, model):
        options = self.onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its notices about initializers listed as inputs
        return self.onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(self, batch):
        found = self.session.run([self.output], {self.input: batch})[0]
        if self.rewritten and self.check is None:
            shipped = self._session(read_mended(self.path)[0])
            self.check = check_batch_rewrite(found, batch, lambda one: shipped.run([self.output], {self.input: one})[0],
                                             self.path)
        return found

    def versions(self):
        found = {"onnxruntime": self.onnxruntime.__version__, "format": "onnx"}
        if self.rewritten:
            found["batch_rewrite"] = self.check
        return found


def openvino_model(path, output, height, width):
    """The mended model converted by OpenVINO's ONNX frontend, its input reshaped to any batch and
    its results cut to the registry's output."""
    import openvino

    mended, name, _ = read_mended(path, fold=True, any_batch=True)
    folder = tempfile.mkdtemp()
    try:
        mended_path = os.path.join(folder, "mended.onnx")
        with open(mended_path, "wb") as f:
            f.write(mended)
        model = openvino.convert_model(mended_path)
    finally:
        shutil.rmtree(folder)
    results = [r for r in model.get_results() if output in r.input_value(0).get_names()]
    if not results:
        raise ContractError(EXIT_BACKEND, "%s has no output '%s'" % (path, output))
    model = openvino.Model(results, model.get_parameters(), os.path.basename(path))
    model.reshape({name: [-1, 3, height, width]})
    return model
