"""The face detectors of the align service, each giving rules.Face(box, score, 5 points).

Facts about their weight files live in detectors.yaml; `load_detector` finds and checks the
files first (never downloading anything) and only then starts the framework.
"""
import copy
import os
import sys

import numpy as np
import yaml

from services.align.rules import Face, five_from_68
from shared.models import registry as registry_mod
from shared.schema import EXIT_USAGE, ContractError

CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectors.yaml")


def load_config(path=None):
    with open(path or CONFIG_PATH) as f:
        return yaml.safe_load(f)


def entry(config, name):
    if name not in config["detectors"]:
        raise KeyError("unknown detector '%s' (known: %s, or auto)"
                       % (name, ", ".join(sorted(config["detectors"]))))
    found = copy.deepcopy(config["detectors"][name])
    found["name"] = name
    return found


def weights_dir(detector_entry, weights_root=None, override=None):
    """--weights NAME=DIR, else <root>/<dir>, else the package that ships the files, else
    (face-alignment) torch hub's checkpoint folder, where the library itself keeps them."""
    folder = registry_mod.weights_dir(detector_entry, weights_root, override)
    if override or os.path.isdir(folder) or not detector_entry["weights"].get("torch_hub"):
        return folder
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return os.path.join(torch_home, "hub", "checkpoints")


class MtcnnDetector(object):
    name = "mtcnn"

    def __init__(self, folder):
        from services.align.mtcnn import MTCNN

        self.model = MTCNN(folder)

    def detect(self, rgb):
        return [Face(box, score, points) for box, score, points in self.model.detect(rgb)]


class DlibDetector(object):
    """HOG finds the faces, the 68-point predictor places the landmarks.

    The 68-point model rather than dlib's 5-point one: the 5-point model marks eye corners and
    the nose base but no mouth corners, so it cannot give the ArcFace template's points."""

    name = "dlib"
    upsample = 1  # one pyramid upsampling: HOG's smallest face goes from ~80 to ~40 px

    def __init__(self, folder):
        import dlib

        self.dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(os.path.join(folder, "shape_predictor_68_face_landmarks.dat"))

    def detect(self, rgb):
        rgb = np.ascontiguousarray(rgb)
        rects, scores, _ = self.hog.run(rgb, self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            shape = self.shape(rgb, rect)
            points68 = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)
            faces.append(Face(box, float(score), five_from_68(points68)))
        return faces


class FaceAlignmentDetector(object):
    """face-alignment 1.5.0 as the original used it: S3FD boxes, 2DFAN4 68 landmarks, 68 -> 5."""

    name = "face-alignment"

    def __init__(self, folder):
        import face_alignment
        import torch
        from face_alignment.models import FAN

        fan_path = os.path.join(folder, "2DFAN4-11f355bf06.pth.tar")

        class LocalFiles(face_alignment.FaceAlignment):
            # The library fetches 2DFAN4 by URL; load the checked local file instead, the way
            # the library loads its download (a state dict, weights_only).
            def _load_native(self, network_name, network_size, device, dtype):
                net = FAN(network_size)
                net.load_state_dict(torch.load(fan_path, map_location=device, weights_only=True))
                return net.to(device, dtype=dtype).eval()

        self.model = LocalFiles(
            face_alignment.LandmarksType.TWO_D, device="cpu", flip_input=False, compile=False,
            face_detector="sfd",
            face_detector_kwargs={"path_to_detector": os.path.join(folder, "s3fd-619a316812.pth")})
        self.versions = {"face_alignment": face_alignment.__version__, "torch": torch.__version__}

    def detect(self, rgb):
        import warnings

        with warnings.catch_warnings():  # the library warns on every image without a face
            warnings.simplefilter("ignore")
            landmarks, _, boxes = self.model.get_landmarks_from_image(
                np.ascontiguousarray(rgb), return_bboxes=True)
        if landmarks is None:
            return []
        return [Face(np.asarray(box[:4], np.float64), float(box[4]), five_from_68(points[:, :2]))
                for points, box in zip(landmarks, boxes)]


CLASSES = {"mtcnn": MtcnnDetector, "dlib": DlibDetector, "face-alignment": FaceAlignmentDetector}


def resolve_chain(config, names, weights_root=None, overrides=None, verify=True):
    """[(entry, folder, digests)] for the chain; `auto` drops detectors without files (noted)
    while a named detector with missing files raises WeightsError."""
    overrides = overrides or {}
    automatic = names == ["auto"]
    chain, notes = [], []
    for name in (config["auto"] if automatic else names):
        found = entry(config, name)
        folder = weights_dir(found, weights_root, overrides.get(name))
        try:
            digests = registry_mod.check_weights(found, folder, verify=verify)
        except registry_mod.WeightsError as exc:
            if not automatic:
                raise
            notes.append("auto: leaving out %s (%s)" % (name, exc))
            continue
        chain.append((found, folder, digests))
    if not chain:
        raise registry_mod.WeightsError("no detector of the chain has its weight files: "
                                        + "; ".join(notes))
    return chain, notes


def load_detector(detector_entry, folder):
    return CLASSES[detector_entry["name"]](folder)


def overrides(pairs):
    """{detector: folder} of the --weights NAME=DIR options."""
    found = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not folder:
            raise ContractError(EXIT_USAGE, "--weights must be NAME=DIR, got '%s'" % pair)
        found[name] = os.path.expanduser(folder)
    return found


def chain_for(args):
    """The chain [(entry, folder, digests)] a program's --detectors, --weights-root, --weights,
    --config and --no-verify ask for, and notes on what `auto` left out (also on stderr)."""
    config = load_config(args.config)
    try:
        chain, notes = resolve_chain(config, args.detectors.split(","), args.weights_root, overrides(args.weights),
                                     verify=not args.no_verify)
    except KeyError as exc:
        raise ContractError(EXIT_USAGE, exc.args[0])
    for note in notes:
        sys.stderr.write("align: %s\n" % note)
    return chain, notes


def add_chain_options(parser):
    """The options of every program that runs the chain: which detectors, their files, checks."""
    parser.add_argument("--detectors", default="auto",
                        help="comma-separated chain of fallbacks (%s), or auto: the original's order, "
                        "leaving out detectors whose files are absent" % ", ".join(sorted(CLASSES)))
    parser.add_argument("--weights-root", default=os.environ.get("FACES_WEIGHTS_DIR"),
                        help="root of all weight folders (env FACES_WEIGHTS_DIR)")
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=DIR",
                        help="folder of one detector's files, e.g. face-alignment=~/fa (repeatable)")
    parser.add_argument("--config", default=None, help="detector config YAML (default: detectors.yaml here)")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check of weight files")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unforeseen error")
