"""dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1, 128-d).

Two framings, chosen by the registry entry's `options.chip` (its options also name the files:
`descriptor_file`, and `shape_file` for the dlib framing):
  template  the original solution's: the 150x150 ArcFace-template crop fed straight to
            compute_face_descriptor (a framing the network never saw in training);
  dlib      dlib's own: the 5-point shape predictor on the aligned crop, then
            get_face_chip(150, padding 0.25), the framing dlib's network was trained on.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
# face_recognition_models (dlib's files) imports pkg_resources, which warns on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
# One OpenBLAS thread per process: the service parallelises with --workers processes (invoke.yaml
# `workers`), and a second thread per process measured 0.73x the images per CPU-second.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from shared.contract.backbone import Backbone, main  # noqa: E402

CHIP_SIZE, CHIP_PADDING = 150, 0.25


class Dlib(Backbone):
    family = "dlib"
    default_batch_size = 32

    def __init__(self, entry, weights_dir, batch_size):
        Backbone.__init__(self, entry, weights_dir, batch_size)
        import dlib

        self.dlib = dlib
        options = entry["options"]
        self.chip = options["chip"]
        if self.chip not in ("template", "dlib"):
            raise ValueError("options.chip must be 'template' or 'dlib', got %r" % self.chip)
        self.model = dlib.face_recognition_model_v1(os.path.join(weights_dir, options["descriptor_file"]))
        if self.chip == "dlib":
            self.shape = dlib.shape_predictor(os.path.join(weights_dir, options["shape_file"]))
            self.detector = dlib.get_frontal_face_detector()

    def _face_box(self, image):
        """dlib's HOG box if it finds a face, else the box it gives on a typical aligned crop."""
        found = self.detector(image, 0)
        if len(found):
            return max(found, key=lambda r: r.area())
        height, width = image.shape[:2]
        return self.dlib.rectangle(int(0.18 * width), int(0.22 * height),
                                   int(0.82 * width), int(0.86 * height))

    def _dlib_chip(self, image):
        shape = self.shape(image, self._face_box(image))
        return self.dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed(self, images):
        if self.chip == "dlib":
            images = [self._dlib_chip(image) for image in images]
        descriptors = self.model.compute_face_descriptor([np.ascontiguousarray(i) for i in images])
        return np.array([np.array(d) for d in descriptors], dtype=np.float32)

    def versions(self):
        return {"dlib": self.dlib.__version__, "blas": bool(self.dlib.DLIB_USE_BLAS), "chip": self.chip}


if __name__ == "__main__":
    main(Dlib)
