"""InsightFace backbones on MXNet: any checkpoint `<prefix>-symbol.json` + `<prefix>-<epoch>.params`
(the registry entry's options.prefix and options.epoch; output layer `fc1`).

Run as `python services/insightface/embed.py --model model4_insightface ...` (the embed
entrypoint, shared/contract/backbone.py); `--engine openvino` runs the checkpoint converted by convert.py.
Entries of options.format onnx (w600k_mbf, sface) are one ONNX file instead, run by ONNX Runtime
natively and read by OpenVINO for the engine (onnx_graph.py).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

# MXNet 1.9.1's MKLDNN graph fusion (MXNET_SUBGRAPH_BACKEND=MKLDNN) breaks y1 on the second
# forward of one bound executor, at any batch size, read or not in between ("Check failed:
# !IsMKLDNNData()", raised inside the forward): its fused FullyConnected (pre_fc1) together with
# the conv+BN fusion; leaving out either pass avoids it, and a new batch shape hides it (the
# Module rebinds). The FC pass is the one to leave out: pre_fc1 is 65 k of y1's 221 M MACs, and
# the convolution fusions, the gain, stay. tests/test_mxnet_fusion.py keeps the crashing case.
os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "MKLDNN")
os.environ.setdefault("MXNET_DISABLE_MKLDNN_FC_OPT", "1")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import numpy as np  # noqa: E402

from shared.contract.backbone import Backbone, main  # noqa: E402
from shared.faces.template import crop_size  # noqa: E402
from shared.models.preprocess import to_batch  # noqa: E402
from shared.models.registry import checkpoint_files, is_onnx  # noqa: E402
from shared.quiet import MXNET, chatter_filtered  # noqa: E402

import onnx_graph  # noqa: E402  (this folder: on sys.path)
from convert import CONVERTER_VERSION, build, read_checkpoint  # noqa: E402


class InsightFace(Backbone):
    family = "insightface"
    default_batch_size = 64
    layout = "NCHW"  # of the converted graph's input (shared/models/engines.py)
    converter_version = CONVERTER_VERSION

    @staticmethod
    def openvino_model(entry, weights_dir):
        """The checkpoint up to the output layer as an OpenVINO graph (convert.py); an ONNX entry's
        file as OpenVINO reads it (onnx_graph.py)."""
        width, height = crop_size(entry["input"]["crop"])
        if is_onnx(entry):
            return onnx_graph.openvino_model(onnx_graph.onnx_file(entry, weights_dir), entry["output"]["layer"],
                                             height, width)
        files = [os.path.join(weights_dir, name) for name in checkpoint_files(entry["options"])]
        symbol, params = read_checkpoint(*files)
        return build(symbol, params, entry["output"]["layer"], height, width)

    def __init__(self, entry, weights_dir, batch_size):
        Backbone.__init__(self, entry, weights_dir, batch_size)
        self.onnx = None
        if is_onnx(entry):
            self.onnx = onnx_graph.OnnxRuntimeGraph(onnx_graph.onnx_file(entry, weights_dir), entry["output"]["layer"])
            return
        import mxnet as mx

        self.mx = mx
        width, height = crop_size(entry["input"]["crop"])
        options = entry["options"]
        with chatter_filtered(MXNET):  # the old checkpoint's symbol upgrade, the subgraph notice
            symbol, arg_params, aux_params = mx.model.load_checkpoint(
                os.path.join(weights_dir, options["prefix"]), options["epoch"])
        layer = entry["output"]["layer"]
        internals = symbol.get_internals()
        if layer + "_output" not in internals.list_outputs():
            raise ValueError("%s has no layer '%s'" % (os.path.join(weights_dir, checkpoint_files(options)[0]), layer))
        self.module = mx.mod.Module(symbol=internals[layer + "_output"], context=mx.cpu(), label_names=None)
        with chatter_filtered(MXNET):
            self.module.bind(data_shapes=[("data", (batch_size, 3, height, width))], for_training=False)
        self.module.set_params(arg_params, aux_params, allow_missing=False)

    def embed(self, images):
        batch = to_batch(images, self.entry, layout="NCHW")
        if self.onnx is not None:
            return self.onnx.run(batch)
        count = len(batch)
        if count < self.batch_size:  # the module is bound to one batch shape: pad the last one
            batch = np.concatenate([batch, np.zeros((self.batch_size - count,) + batch.shape[1:], np.float32)])
        self.module.forward(self.mx.io.DataBatch(data=[self.mx.nd.array(batch)]), is_train=False)
        return self.module.get_outputs()[0].asnumpy()[:count]

    def versions(self):
        if self.onnx is not None:
            return self.onnx.versions()
        return {"mxnet": self.mx.__version__, "mkldnn": os.environ.get("MXNET_MKLDNN_ENABLED", "1"),
                "subgraph_backend": os.environ.get("MXNET_SUBGRAPH_BACKEND"),
                "mkldnn_fc_opt_disabled": os.environ.get("MXNET_DISABLE_MKLDNN_FC_OPT")}


if __name__ == "__main__":
    main(InsightFace)
