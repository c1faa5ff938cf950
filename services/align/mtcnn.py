"""MTCNN (Zhang et al. 2016) on InsightFace's MXNet weights det1..det4.

Written for this project from the paper's cascade: P-Net scans an image pyramid, R-Net and
O-Net re-score and refine the candidate boxes (O-Net also gives 5 landmarks), and det4 (the
landmark-refinement net of MTCNN v2) moves each landmark within a patch around it. These
weights read the image as cv2 loads it (BGR, not transposed), scaled (x - 127.5) / 128; box
regressions are (dx1, dy1, dx2, dy2) in box units and the landmarks x1..x5 then y1..y5. Checked
on the LFW crops: BGR finds more faces than RGB, and a transposed image finds none.
"""
import math
import os

import numpy as np

from shared.quiet import MXNET, chatter_filtered

PYRAMID_FACTOR = 0.709  # the paper's scale step between pyramid levels
MIN_FACE = 20  # pixels: the smallest face the pyramid looks for
THRESHOLDS = (0.6, 0.7, 0.8)  # P-Net, R-Net, O-Net face probabilities (InsightFace's)
CELL, STRIDE = 12, 2  # P-Net's receptive field and output stride
REFINE_PATCH = 0.25  # det4 patch side, as a share of the face box's longer side
REFINE_LIMIT = 0.35  # det4 offsets further than this from the patch centre are ignored


def _nms(boxes, overlap, mode="union"):
    """Indices of boxes kept by greedy non-maximum suppression, best score first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = width * height
        if mode == "min":
            ratio = inter / np.minimum(area[best], area[rest])
        else:
            ratio = inter / (area[best] + area[rest] - inter)
        order = rest[ratio <= overlap]
    return np.array(keep, dtype=int)


def _square(boxes):
    """Grow each box to a square around its centre (the next stage reads square patches)."""
    out = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes, offsets):
    """Move box corners by the net's offsets, given in units of the box's width and height."""
    out = boxes.copy()
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += offsets[:, 0] * width
    out[:, 1] += offsets[:, 1] * height
    out[:, 2] += offsets[:, 2] * width
    out[:, 3] += offsets[:, 3] * height
    return out


def _patches(image, boxes, size):
    """Crop each box (zero-padded where it leaves the image) and resize to size x size."""
    import cv2

    height, width = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for number, box in enumerate(boxes):
        x1, y1, x2, y2 = [int(round(v)) for v in box[:4]]
        if x2 <= x1 or y2 <= y1:
            continue
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=image.dtype)
        sx1, sy1 = max(x1, 0), max(y1, 0)
        sx2, sy2 = min(x2, width - 1), min(y2, height - 1)
        if sx2 < sx1 or sy2 < sy1:
            continue
        patch[sy1 - y1:sy2 - y1 + 1, sx1 - x1:sx2 - x1 + 1] = image[sy1:sy2 + 1, sx1:sx2 + 1]
        out[number] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _normalize(batch_nhwc):
    return ((np.asarray(batch_nhwc, dtype=np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2)


class _Net(object):
    """One MXNet stage bound per input shape (P-Net sees one shape per pyramid level)."""

    def __init__(self, mx, prefix, outputs, softmax_of=None):
        with chatter_filtered(MXNET):  # an old checkpoint's symbol upgrade
            symbol, self.arg_params, self.aux_params = mx.model.load_checkpoint(prefix, 1)
        internals = symbol.get_internals()
        heads = [internals[name + "_output"] for name in outputs]
        if softmax_of:  # det2/det3 end in SoftmaxOutput, a training layer that wants labels
            heads.append(mx.sym.softmax(internals[softmax_of + "_output"], axis=1))
        self.mx = mx
        self.symbol = mx.sym.Group(heads)
        self.executors = {}

    def __call__(self, batch):
        shape = batch.shape
        rows = 1 << int(math.ceil(math.log(max(shape[0], 1), 2)))  # few distinct bound shapes
        if rows != shape[0]:
            batch = np.concatenate([batch, np.zeros((rows - shape[0],) + shape[1:], np.float32)])
        executor = self.executors.get(batch.shape)
        if executor is None:
            executor = self.symbol.simple_bind(ctx=self.mx.cpu(), grad_req="null", data=batch.shape)
            executor.copy_params_from(self.arg_params, self.aux_params, allow_extra_params=True)
            self.executors[batch.shape] = executor
        executor.forward(is_train=False, data=self.mx.nd.array(batch))
        return [out.asnumpy()[:shape[0]] for out in executor.outputs]


class MTCNN(object):
    """Faces with scores and 5 landmarks: detect(rgb) -> [(box x1,y1,x2,y2, score, points 5x2)]."""

    files = ["det%d-%s" % (n, part) for n in (1, 2, 3, 4) for part in ("symbol.json", "0001.params")]

    def __init__(self, weights_dir, refine=True, min_face=MIN_FACE, thresholds=THRESHOLDS):
        import mxnet as mx

        prefix = lambda name: os.path.join(weights_dir, name)  # noqa: E731
        self.pnet = _Net(mx, prefix("det1"), ["conv4_2", "prob1"])
        self.rnet = _Net(mx, prefix("det2"), ["conv5_2"], softmax_of="conv5_1")
        self.onet = _Net(mx, prefix("det3"), ["conv6_2", "conv6_3"], softmax_of="conv6_1")
        self.lnet = _Net(mx, prefix("det4"), ["fc5_%d" % k for k in range(1, 6)]) if refine else None
        self.min_face = min_face
        self.thresholds = thresholds

    def _pyramid(self, height, width):
        scale = float(CELL) / self.min_face
        side = min(height, width) * scale
        scales = []
        while side >= CELL:
            scales.append(scale)
            scale *= PYRAMID_FACTOR
            side *= PYRAMID_FACTOR
        return scales

    def _proposals(self, image):
        import cv2

        height, width = image.shape[:2]
        found = []
        for scale in self._pyramid(height, width):
            size = (int(math.ceil(width * scale)), int(math.ceil(height * scale)))
            level = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            offsets, prob = self.pnet(_normalize(level[None]))
            rows, cols = np.where(prob[0, 1] > self.thresholds[0])
            if rows.size == 0:
                continue
            boxes = np.stack([(STRIDE * cols + 1) / scale, (STRIDE * rows + 1) / scale,
                              (STRIDE * cols + CELL) / scale, (STRIDE * rows + CELL) / scale,
                              prob[0, 1, rows, cols]], axis=1)
            boxes = np.hstack([boxes, offsets[0][:, rows, cols].T])
            found.append(boxes[_nms(boxes, 0.5)])
        if not found:
            return np.zeros((0, 5))
        boxes = np.vstack(found)
        boxes = boxes[_nms(boxes, 0.7)]
        return _square(np.hstack([_regress(boxes[:, :4], boxes[:, 5:9]), boxes[:, 4:5]]))

    def _refine_landmarks(self, image, boxes, points):
        """det4: re-locate each landmark inside a patch centred on it (MTCNN v2's last stage)."""
        side = np.maximum(boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1)
        patch = np.floor(REFINE_PATCH * side)
        patch += patch % 2  # an even side keeps the landmark at the patch centre
        stacked = []
        for k in range(5):
            corners = points[:, k] - 0.5 * patch[:, None]
            windows = np.hstack([corners, corners + patch[:, None] - 1])
            stacked.append(_normalize(_patches(image, windows, 24)))
        offsets = np.stack(self.lnet(np.concatenate(stacked, axis=1)), axis=1)  # (N, 5, 2)
        offsets[np.abs(offsets - 0.5) > REFINE_LIMIT] = 0.5  # distrust large jumps: stay put
        return points - 0.5 * patch[:, None, None] + offsets * patch[:, None, None]

    def detect(self, rgb):
        image = np.ascontiguousarray(rgb[..., ::-1])  # the weights expect cv2's BGR order
        boxes = self._proposals(image)
        if len(boxes):
            offsets, prob = self.rnet(_normalize(_patches(image, boxes, 24)))
            keep = prob[:, 1] > self.thresholds[1]
            boxes, offsets = boxes[keep], offsets[keep]
            boxes[:, 4] = prob[keep, 1]
            order = _nms(boxes, 0.7)
            boxes = _square(np.hstack([_regress(boxes[order, :4], offsets[order]), boxes[order, 4:5]]))
        if len(boxes) == 0:
            return []
        offsets, marks, prob = self.onet(_normalize(_patches(image, boxes, 48)))
        keep = prob[:, 1] > self.thresholds[2]
        boxes, offsets, marks = boxes[keep], offsets[keep], marks[keep]
        if len(boxes) == 0:
            return []
        boxes[:, 4] = prob[keep, 1]
        width = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        height = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = np.stack([boxes[:, 0:1] + width * marks[:, 0:5],
                           boxes[:, 1:2] + height * marks[:, 5:10]], axis=2)  # (N, 5, 2)
        boxes = np.hstack([_regress(boxes[:, :4], offsets), boxes[:, 4:5]])
        order = _nms(boxes, 0.7, mode="min")
        boxes, points = boxes[order], points[order]
        if self.lnet is not None:
            points = self._refine_landmarks(image, boxes, points)
        return [(box[:4], float(box[4]), pts) for box, pts in zip(boxes, points)]
