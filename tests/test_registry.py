import io
import os

import pytest

from shared.faces.template import CROP_SIZES
from shared.models import registry as registry_mod
from conftest import require, WEIGHTS

ORIGINAL_15 = (["model%d_insightface" % i for i in (1, 2, 3, 4)] + ["model5_dlib", "model6_facenet",
               "model7_facenet"] + ["vggface2_%s_%s" % (net, kind) for net in ("resnet50", "senet50")
                                    for kind in ("128", "256", "ft", "scratch")])


def test_registry_is_consistent():
    assert registry_mod.load().problems() == []


def test_the_original_15_models_are_there():
    registry = registry_mod.load()
    assert sorted(registry.names(original=True)) == sorted(ORIGINAL_15)


def test_group_weights_match_the_original():
    registry = registry_mod.load()
    assert registry.groups["insightface"] == {"step4": 0.70, "step6": 0.70, "step7": 0.82}
    within = [registry.model("model%d_insightface" % i)["ensemble"]["within"] for i in (1, 2, 3, 4)]
    assert within == [0.75, 0.10, 0.10, 0.05]
    assert all(registry.model(n)["ensemble"]["within"] == 0.125 for n in registry.names(family="vggface2", original=True))


def test_entries_are_complete():
    registry = registry_mod.load()
    for name in registry.names():
        entry = registry.model(name)
        assert entry["input"]["crop"] in CROP_SIZES, name
        assert entry["output"]["dim"] > 0 and entry["weights"]["files"], name
        assert set(entry["embed"]["flip"]) <= {"train", "test"}, name
        assert entry["head"]["width"] in (1024, 2048), name
    assert registry.model("vggface2_senet50_128")["head"]["clr"]["max_lr"] == 2e-4
    assert registry.model("model1_insightface")["head"]["clr"]["max_lr"] == 1e-3
    dims = dict((n, registry.model(n)["output"]["dim"]) for n in ORIGINAL_15)
    assert dims["vggface2_senet50_256"] == 256 and dims["vggface2_resnet50_ft"] == 8631


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(KeyError, match="model4_insightface"):
        registry_mod.load().model("model99")


def test_registered_hashes_match_the_shipped_weights():
    sums = {}
    with io.open(require(os.path.join(WEIGHTS, "SHA256SUMS"))) as f:
        for line in f:
            digest, path = line.split()
            sums[os.path.normpath(path)] = digest
    registry = registry_mod.load()
    checked = 0
    for name in registry.names():
        entry = registry.model(name)
        if entry["weights"].get("package") or entry["weights"].get("distribution"):
            continue  # shipped in a package, not in the weights folder (tests/test_bad_input.py checks
            # dlib's; tests/test_weights_install.py those of the package index's distributions)
        for filename, digest in entry["weights"]["files"].items():
            key = os.path.normpath(os.path.join(entry["weights"]["dir"], filename))
            if digest:
                assert sums[key] == digest, key
                checked += 1
    assert checked >= 2


def test_check_weights_reports_missing_and_mismatched(tmp_path):
    entry = registry_mod.load().model("model4_insightface")
    with pytest.raises(registry_mod.WeightsError) as info:
        registry_mod.check_weights(entry, str(tmp_path))
    message = str(info.value)
    assert "model-0000.params" in message and str(tmp_path) in message and "InsightFace model zoo" in message
    for name in entry["weights"]["files"]:
        (tmp_path / name).write_bytes(b"not the model")
    with pytest.raises(registry_mod.WeightsError, match="sha256"):
        registry_mod.check_weights(entry, str(tmp_path))
    assert set(registry_mod.check_weights(entry, str(tmp_path), verify=False)) == set(entry["weights"]["files"])
