"""FaceNet backbones on TensorFlow (davidsandberg/facenet's TF1 graphs, run through tf.compat.v1).

Run as `python services/facenet/embed.py --model model6_facenet ...` (the embed entrypoint,
shared/contract/backbone.py). FaceNet releases ship a model in two formats, and the files the registry
entry lists say which one to load:
  - a frozen graph: one `.pb` GraphDef;
  - a meta graph + checkpoint: `model-X.meta` plus the checkpoint's `model-X.ckpt-N.index`
    (and its `.data-*` shards), restored with Saver as facenet.load_model does.
Either way the graph is FaceNet's interface: `input:0` (float32 N x 160 x 160 x 3, prewhitened
RGB), `phase_train:0` (bool, fed False: batch norm uses its moving averages) and the output
tensor the registry names (`embeddings:0`, L2-normalised N x 512). A graph frozen for inference
may lack phase_train (facenet_pypi's: its batch norm is already fixed); it is fed only where it is.
A frozen graph whose input is fixed at batch 1 (facenet_pypi's: the placeholder and the Reshape
shapes [1, ...] folded into constants) is rewritten once to take any batch; the first batch it
embeds is checked against the graph as shipped, image by image (shared/models/rewrite.py).

`--engine openvino` (shared/models/engines.py): OpenVINO reads TensorFlow graphs itself, so the
conversion is a frozen GraphDef of the loaded graph, phase_train bound to False, handed to
ov.convert_model (no ONNX step).
"""
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from shared.contract.backbone import Backbone, main  # noqa: E402
from shared.faces.template import crop_size  # noqa: E402
from shared.models.preprocess import to_batch  # noqa: E402
from shared.models.rewrite import check_batch_rewrite  # noqa: E402
from shared.quiet import TENSORFLOW, chatter_filtered  # noqa: E402
from shared.schema import EXIT_BACKEND, ContractError  # noqa: E402

INPUT_TENSOR = "input:0"
PHASE_TRAIN_TENSOR = "phase_train:0"


def batch_free(tf, graph_def):
    """(the graph taking any batch, True) for a frozen graph fixed at batch 1: the `input`
    placeholder's first dimension becomes -1, and every Reshape to a constant shape [1, ...]
    reshapes to [-1, ...the rest of the shape TensorFlow infers at batch 1]; else (graph_def, False)."""
    nodes = dict((node.name, node) for node in graph_def.node)
    placeholder = nodes.get(INPUT_TENSOR.split(":")[0])
    dims = placeholder.attr["shape"].shape.dim if placeholder is not None else []
    if not dims or dims[0].size != 1:
        return graph_def, False
    shipped = tf.Graph()
    with shipped.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    free = tf.compat.v1.GraphDef()
    free.CopyFrom(graph_def)
    nodes = dict((node.name, node) for node in free.node)
    nodes[placeholder.name].attr["shape"].shape.dim[0].size = -1
    for node in free.node:
        shape = nodes.get(node.input[1].split(":")[0]) if node.op == "Reshape" else None
        value = tf.make_ndarray(shape.attr["value"].tensor) if shape is not None and shape.op == "Const" else None
        if value is not None and value.ndim == 1 and len(value) > 1 and value[0] == 1:
            inferred = shipped.get_tensor_by_name(node.name + ":0").shape.as_list()  # batch 1: fully known
            shape.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray([-1] + inferred[1:], value.dtype)))
    return free, True


def graph_files(entry, weights_dir):
    """('frozen', path of the .pb) or ('checkpoint', (path of the .meta, checkpoint prefix))."""
    names = sorted(entry["weights"]["files"])
    frozen = [n for n in names if n.endswith(".pb")]
    metas = [n for n in names if n.endswith(".meta")]
    indexes = [n for n in names if n.endswith(".index")]
    if len(frozen) == 1 and not metas:
        return "frozen", os.path.join(weights_dir, frozen[0])
    if len(metas) == 1 and len(indexes) == 1 and not frozen:
        prefix = indexes[0][:-len(".index")]
        return "checkpoint", (os.path.join(weights_dir, metas[0]), os.path.join(weights_dir, prefix))
    raise ContractError(EXIT_BACKEND, "model '%s': the registry must list either one frozen .pb, or one "
                        ".meta plus its checkpoint's .index (and .data-* files); it lists %s"
                        % (entry["name"], names))


CONVERTER_VERSION = "facenet-frozen-ov-2"  # bump when openvino_model's graph changes


class FaceNet(Backbone):
    family = "facenet"
    default_batch_size = 32
    layout = "NHWC"  # of the converted graph's input
    converter_version = CONVERTER_VERSION

    @staticmethod
    def openvino_model(entry, weights_dir):
        """The loaded graph frozen (variables -> constants, phase_train -> False), pruned to the
        output, converted by OpenVINO's TensorFlow frontend."""
        import openvino

        native = FaceNet(entry, weights_dir, 1)
        native.tf.get_logger().setLevel("ERROR")  # the TF1 freezing API's deprecation notices
        tf1, output = native.tf.compat.v1, native.output.op.name
        frozen = tf1.graph_util.convert_variables_to_constants(native.session, native.graph.as_graph_def(), [output])
        graph = native.tf.Graph()
        with graph.as_default():
            bound = {PHASE_TRAIN_TENSOR: native.tf.constant(False)} if native.phase_train is not None else {}
            tf1.import_graph_def(frozen, input_map=bound, name="")
        pruned = tf1.graph_util.extract_sub_graph(graph.as_graph_def(), [output])
        folder = tempfile.mkdtemp()
        try:  # from a .pb file, OpenVINO's own TF reader runs (an in-memory graph goes through
            # TensorFlow, which turns the bound cond into an `If` the converter cannot take)
            path = os.path.join(folder, "frozen.pb")
            with open(path, "wb") as f:
                f.write(pruned.SerializeToString())
            model = openvino.convert_model(path)
        finally:
            shutil.rmtree(folder)
        width, height = crop_size(entry["input"]["crop"])
        model.reshape([-1, height, width, 3])
        return model

    def __init__(self, entry, weights_dir, batch_size):
        Backbone.__init__(self, entry, weights_dir, batch_size)
        with chatter_filtered(TENSORFLOW):
            import tensorflow as tf

        self.tf = tf
        tf1 = tf.compat.v1
        self.format, paths = graph_files(entry, weights_dir)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.session = tf1.Session(graph=self.graph)
            if self.format == "frozen":
                self.shipped = tf1.GraphDef()
                with open(paths, "rb") as f:
                    self.shipped.ParseFromString(f.read())
                graph_def, self.rewritten = batch_free(tf, self.shipped)
                tf1.import_graph_def(graph_def, name="")
                source = paths
            else:
                meta, prefix = paths
                saver = tf1.train.import_meta_graph(meta, clear_devices=True)
                saver.restore(self.session, prefix)
                source, self.rewritten = meta, False
        self.source, self.check = source, None
        self.input, self.output = [self._tensor(name) for name in (INPUT_TENSOR, entry["output"]["layer"])]
        names = set(op.name for op in self.graph.get_operations())
        self.phase_train = self._tensor(PHASE_TRAIN_TENSOR) if PHASE_TRAIN_TENSOR.split(":")[0] in names else None

    def _tensor(self, name, graph=None):
        try:
            return (graph or self.graph).get_tensor_by_name(name)
        except (KeyError, ValueError):
            raise ContractError(EXIT_BACKEND, "%s has no tensor '%s' (a FaceNet graph feeds %s, and %s where it "
                                "has one)" % (self.source, name, INPUT_TENSOR, PHASE_TRAIN_TENSOR))

    def _run(self, batch):
        feed = {self.input: batch}
        if self.phase_train is not None:
            feed[self.phase_train] = False
        return self.session.run(self.output, feed_dict=feed)

    def _check_rewrite(self, batch, found):
        """The rewritten graph's first batch against the shipped graph, one image at a time."""
        tf1 = self.tf.compat.v1
        graph = self.tf.Graph()
        with graph.as_default():
            tf1.import_graph_def(self.shipped, name="")
        with tf1.Session(graph=graph) as session:
            tensors = [self._tensor(name, graph) for name in (INPUT_TENSOR, self.entry["output"]["layer"])]
            self.check = check_batch_rewrite(found, batch, lambda one: session.run(tensors[1], {tensors[0]: one}),
                                             self.source)

    def embed(self, images):
        batch = to_batch(images, self.entry, layout="NHWC")
        found = self._run(batch)
        if self.rewritten and self.check is None:
            self._check_rewrite(batch, found)
        return found

    def versions(self):
        found = {"tensorflow": self.tf.__version__, "format": self.format,
                 "phase_train": self.phase_train is not None}
        if self.rewritten:
            found["batch_rewrite"] = self.check
        return found


if __name__ == "__main__":
    main(FaceNet)
