"""Bare-framework embedding loops, the yardstick `invoke bench.embed` sets beside each service.

    python -m shared.bench.bare_embed --model NAME --weights-root DIR --images DIR --list FILE [--batch-size B]

Run by a service's own environment (the framework is only installed there). It reads the crops
and applies the registry's preprocessing as the service does, then runs the framework directly:
no contract, no chunks, no checks. The first batch is the warm-up (MKLDNN builds its primitives on
the first call); the last line printed is a JSON object with the wall and CPU seconds of the rest. MXNet's fusion is whatever the environment says (MXNET_SUBGRAPH_BACKEND), so the
caller can time both settings with one loop.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from shared.bench import roofline  # noqa: E402
from shared.contract.validate import read_list  # noqa: E402
from shared.faces.images import load_rgb_at  # noqa: E402
from shared.faces.template import crop_size  # noqa: E402
from shared.models import registry as registry_mod  # noqa: E402
from shared.models.preprocess import to_batch  # noqa: E402


def insightface_forward(entry, folder, batch_size):
    import mxnet as mx

    options = entry["options"]
    symbol, arg_params, aux_params = mx.model.load_checkpoint(os.path.join(folder, options["prefix"]),
                                                              options["epoch"])
    width, height = crop_size(entry["input"]["crop"])
    module = mx.mod.Module(symbol=symbol.get_internals()[entry["output"]["layer"] + "_output"],
                           context=mx.cpu(), label_names=None)
    module.bind(data_shapes=[("data", (batch_size, 3, height, width))], for_training=False)
    module.set_params(arg_params, aux_params)

    def forward(images):
        module.forward(mx.io.DataBatch(data=[mx.nd.array(to_batch(images, entry))]), is_train=False)
        return module.get_outputs()[0].asnumpy()
    with open(os.path.join(folder, options["prefix"] + "-symbol.json")) as f:
        forward.flops = 2 * roofline.mxnet_macs(f.read(), entry["output"]["layer"], (3, height, width))
    return forward


def caffe_forward(entry, folder, batch_size):
    """OpenCV's Caffe importer on the published files as they are (no prototxt rewriting)."""
    import cv2

    files = sorted(entry["weights"]["files"])
    definition = [n for n in files if n.endswith(".prototxt")][0]
    weights = [n for n in files if n.endswith(".caffemodel")][0]
    net = cv2.dnn.readNetFromCaffe(os.path.join(folder, definition), os.path.join(folder, weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def forward(images):
        net.setInput(to_batch(images, entry))
        return net.forward(entry["output"]["layer"])
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "services", "vggface2"))
    import prototxt

    with open(os.path.join(folder, definition)) as f:
        forward.flops = 2 * roofline.caffe_macs(prototxt.parse(f.read()), (3,) + crop_size(entry["input"]["crop"])[::-1])
    return forward


def dlib_forward(entry, folder, batch_size):
    """The template framing only: compute_face_descriptor on the crops as given."""
    import dlib

    if entry["options"]["chip"] != "template":
        raise ValueError("the bare dlib loop runs the template framing only, not chip '%s'" % entry["options"]["chip"])
    model = dlib.face_recognition_model_v1(os.path.join(folder, entry["options"]["descriptor_file"]))

    def forward(images):
        return np.array(model.compute_face_descriptor([np.ascontiguousarray(i) for i in images]), np.float32)
    return forward


FORWARDS = {"insightface": insightface_forward, "vggface2": caffe_forward, "dlib": dlib_forward}


def run(entry, folder, images, batch_size):
    """Embed `images` in full batches: {images, wall_s, cpu_s} of the steady loop (the first batch,
    where MKLDNN and OpenCV build their primitives, is the warm-up and not counted), dim, flops."""
    if entry["family"] not in FORWARDS:
        raise ValueError("no bare loop for family '%s' (known: %s)" % (entry["family"], ", ".join(sorted(FORWARDS))))
    batch_size = min(batch_size, len(images))
    forward = FORWARDS[entry["family"]](entry, folder, batch_size)
    out = [forward(images[:batch_size])]
    wall, cpu = time.time(), time.process_time()
    out += [forward(images[lo:lo + batch_size]) for lo in range(batch_size, len(images) - batch_size + 1, batch_size)]
    wall, cpu = time.time() - wall, time.process_time() - cpu
    return {"images": batch_size * (len(out) - 1), "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
            "dim": int(np.concatenate(out).reshape(batch_size * len(out), -1).shape[1]),
            "flops_per_image": getattr(forward, "flops", None)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bare_embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights-root", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--list", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    entry = registry_mod.load().model(args.model)
    folder = registry_mod.weights_dir(entry, args.weights_root)
    size = crop_size(entry["input"]["crop"])
    images = [load_rgb_at(os.path.join(args.images, name), size)[0] for name in read_list(args.list)]
    print(json.dumps(run(entry, folder, images, args.batch_size)))


if __name__ == "__main__":
    main()
