"""Caffe backbones (the VGGFace2 models, and any `.prototxt` + `.caffemodel` pair in the registry).

Run as `python services/vggface2/embed.py --model vggface2_resnet50_128 ...` (the embed entrypoint,
shared/contract/backbone.py; `--engine openvino`: the network converted by convert.py). The registry names
the model's two files, its preprocessing and the blob whose value is the embedding (e.g.
`feat_extract`, `classifier`, `fc1`).

Backends, by FACES_CAFFE_BACKEND (auto | caffe | opencv; default auto): `caffe` is pycaffe (the
Caffe image: Debian bullseye's python3-caffe), `opencv` is OpenCV's Caffe importer (cv2.dnn, the
local virtualenv); auto takes pycaffe when it imports, else OpenCV. Both run the same network
definition, rewritten by prototxt.expand_axpy so that the SE models need no custom layer.

This file and everything it imports must stay Python-2.7 compatible (the original's Caffe
environment); tests/test_python27.py checks that.
"""
from __future__ import absolute_import, division, print_function

import io
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, HERE)

import convert  # noqa: E402
import prototxt  # noqa: E402
from shared.contract.backbone import Backbone, main  # noqa: E402
from shared.faces.template import crop_size  # noqa: E402
from shared.models.preprocess import to_batch  # noqa: E402
from shared.schema import EXIT_BACKEND, ContractError  # noqa: E402

BACKEND_VARIABLE = "FACES_CAFFE_BACKEND"
BACKENDS = ("auto", "caffe", "opencv")


def model_files(entry, weights_dir):
    """The (network definition, weights) paths the registry entry lists."""
    by_suffix = {}
    for name in entry["weights"]["files"]:
        by_suffix.setdefault(os.path.splitext(name)[1], []).append(name)
    if len(by_suffix.get(".prototxt", [])) != 1 or len(by_suffix.get(".caffemodel", [])) != 1:
        raise ContractError(EXIT_BACKEND, "model '%s': the registry must list exactly one .prototxt and "
                            "one .caffemodel file, it lists %s" % (entry["name"], sorted(entry["weights"]["files"])))
    return (os.path.join(weights_dir, by_suffix[".prototxt"][0]),
            os.path.join(weights_dir, by_suffix[".caffemodel"][0]))


def read_definition(path):
    with io.open(path, encoding="utf-8") as f:
        return prototxt.expand_axpy(prototxt.parse(f.read(), path))


class OpenCVNet(object):
    """cv2.dnn's Caffe importer: names outputs by layer, so the blob maps to its last writer."""

    name = "opencv"

    def __init__(self, definition, weights_path, blob):
        import cv2

        self.cv2 = cv2
        writers = prototxt.producers(definition)
        if blob not in writers:
            raise ValueError("the network has no blob '%s'" % blob)
        self.layer = writers[blob]
        self.input = prototxt.input_name(definition)
        with open(weights_path, "rb") as f:
            weights = bytearray(f.read())
        self.net = cv2.dnn.readNetFromCaffe(bytearray(prototxt.dump(definition).encode("utf-8")), weights)
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def forward(self, batch):
        self.net.setInput(batch, self.input)
        return self.net.forward(self.layer)

    def blobs(self, layer):
        import numpy as np

        return [np.asarray(b) for b in self.net.getLayer(self.net.getLayerId(layer)).blobs]

    def versions(self):
        return {"backend": self.name, "opencv": self.cv2.__version__}


class CaffeNet(object):
    """pycaffe: reads blobs by name after a full forward pass."""

    name = "caffe"

    def __init__(self, definition, weights_path, blob):
        os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe logs every layer at load otherwise
        import caffe

        self.caffe = caffe
        caffe.set_mode_cpu()
        self.input = prototxt.input_name(definition)
        handle, path = tempfile.mkstemp(suffix=".prototxt")  # caffe.Net reads definitions from files only
        try:
            with io.open(handle, "w", encoding="utf-8") as f:
                f.write(prototxt.dump(definition) + u"\n")
            self.net = caffe.Net(path, weights_path, caffe.TEST)
        finally:
            os.remove(path)
        if blob not in self.net.blobs:
            raise ValueError("the network has no blob '%s'" % blob)
        self.blob = blob

    def forward(self, batch):
        data = self.net.blobs[self.input]
        if data.data.shape != batch.shape:
            data.reshape(*batch.shape)
            self.net.reshape()
        data.data[...] = batch
        self.net.forward()
        return self.net.blobs[self.blob].data.copy()

    def blobs(self, layer):
        return [param.data.copy() for param in self.net.params[layer]]

    def versions(self):
        return {"backend": self.name, "caffe": getattr(self.caffe, "__version__", "unknown")}


def choose_backend(requested):
    if requested not in BACKENDS:
        raise ContractError(EXIT_BACKEND, "%s=%s: choose one of %s" % (BACKEND_VARIABLE, requested, ", ".join(BACKENDS)))
    if requested == "opencv":
        return OpenCVNet
    try:
        import caffe  # noqa: F401
    except ImportError as exc:
        if requested == "caffe":
            raise ContractError(EXIT_BACKEND, "%s=caffe but pycaffe does not import (%s); use the Caffe "
                                "image, or %s=opencv" % (BACKEND_VARIABLE, exc, BACKEND_VARIABLE))
        return OpenCVNet
    return CaffeNet


class CaffeBackbone(Backbone):
    family = "vggface2"
    default_batch_size = 16
    layout = "NCHW"  # of the converted graph's input (shared/models/engines.py)
    converter_version = convert.CONVERTER_VERSION

    def __init__(self, entry, weights_dir, batch_size):
        Backbone.__init__(self, entry, weights_dir, batch_size)
        backend = choose_backend(os.environ.get(BACKEND_VARIABLE, "auto"))
        definition_path, weights_path = model_files(entry, weights_dir)
        self.net = backend(read_definition(definition_path), weights_path, entry["output"]["layer"])

    @staticmethod
    def openvino_model(entry, weights_dir):
        """The network up to the output blob as an OpenVINO graph (convert.py), with the weights
        as this service's backend reads them."""
        native = CaffeBackbone(entry, weights_dir, 1)
        width, height = crop_size(entry["input"]["crop"])
        return convert.build(read_definition(model_files(entry, weights_dir)[0]), native.net.blobs,
                             entry["output"]["layer"], height, width)

    def embed(self, images):
        out = self.net.forward(to_batch(images, self.entry, layout="NCHW"))
        return out.reshape(len(images), -1)  # feat_extract/classifier are N x D x 1 x 1 blobs

    def versions(self):
        return self.net.versions()


if __name__ == "__main__":
    main(CaffeBackbone)
