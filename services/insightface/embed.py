"""InsightFace backbones on MXNet: any checkpoint `<prefix>-symbol.json` + `<prefix>-<epoch>.params`
(the registry entry's options.prefix and options.epoch; output layer `fc1`).

Run as `python services/insightface/embed.py --model model4_insightface ...` (the embed
entrypoint, shared/backbone.py).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

# With MXNet 1.9.1's default MKLDNN graph fusion, y1's second forward fails in asnumpy()
# ("Check failed: !IsMKLDNNData()"). The fusion pass is the culprit, not MKLDNN: without it
# the MKLDNN kernels give the plain kernels' embeddings (max difference 4e-7) about 40%
# faster (59 vs 43 images/s on 2 cores). MXNET_MKLDNN_ENABLED=0 remains a safe fallback.
os.environ.setdefault("MXNET_SUBGRAPH_BACKEND", "NONE")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import numpy as np  # noqa: E402

from shared.backbone import Backbone, main  # noqa: E402
from shared.preprocess import to_batch  # noqa: E402
from shared.quiet import MXNET, chatter_filtered  # noqa: E402
from shared.registry import checkpoint_files  # noqa: E402
from shared.template import crop_size  # noqa: E402


class InsightFace(Backbone):
    family = "insightface"
    default_batch_size = 64

    def __init__(self, entry, weights_dir, batch_size):
        Backbone.__init__(self, entry, weights_dir, batch_size)
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
        count = len(batch)
        if count < self.batch_size:  # the module is bound to one batch shape: pad the last one
            batch = np.concatenate([batch, np.zeros((self.batch_size - count,) + batch.shape[1:], np.float32)])
        self.module.forward(self.mx.io.DataBatch(data=[self.mx.nd.array(batch)]), is_train=False)
        return self.module.get_outputs()[0].asnumpy()[:count]

    def versions(self):
        return {"mxnet": self.mx.__version__, "mkldnn": os.environ.get("MXNET_MKLDNN_ENABLED", "1"),
                "subgraph_backend": os.environ.get("MXNET_SUBGRAPH_BACKEND")}


if __name__ == "__main__":
    main(InsightFace)
