"""Contract pieces that need no framework: lists, shards, preprocessing."""
import numpy as np
import pytest

from shared.contract.validate import read_list
from shared.models.preprocess import to_batch
from shared.schema import ContractError, output_prefix, parse_shard, shard_bounds


def test_read_list_plain_and_csv(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("#1.jpg\nx/1.jpg\n\ny/2.png\n")  # no comments: '#1.jpg' is an image
    assert read_list(str(plain)) == ["#1.jpg", "x/1.jpg", "y/2.png"]
    csv = tmp_path / "train.csv"
    csv.write_text("image,label\n1.png,4\n2.png,7\n")
    assert read_list(str(csv)) == ["1.png", "2.png"]


@pytest.mark.parametrize("content,message", [("", "names no images"), ("a.jpg\na.jpg\n", "listed twice")])
def test_read_list_rejects_bad_lists(tmp_path, content, message):
    path = tmp_path / "l.txt"
    path.write_text(content)
    with pytest.raises(ContractError, match=message):
        read_list(str(path))
    with pytest.raises(ContractError, match="does not exist"):
        read_list(str(tmp_path / "none.txt"))


def test_shards_cover_every_row_once():
    for total in (0, 1, 7, 100):
        for count in (1, 2, 3, 8):
            rows = [r for i in range(count) for r in range(*shard_bounds(total, (i, count)))]
            assert rows == list(range(total))
    for align in (2, 5):
        bounds = [shard_bounds(23, (i, 3), align) for i in range(3)]
        assert [r for lo, hi in bounds for r in range(lo, hi)] == list(range(23))
        assert all(lo % align == 0 for lo, _ in bounds)
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    assert output_prefix("train", (1, 4)) == "train.shard-1-of-4" and output_prefix("train", None) == "train"
    for bad in ("4/4", "a/b", "1", "-1/2"):
        with pytest.raises(ContractError):
            parse_shard(bad)


def _entry(**input_spec):
    spec = {"color": "RGB", "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1], "whiten": False}
    spec.update(input_spec)
    return {"input": spec}


def test_to_batch_colour_mean_std_and_layout():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 2] = 10, 200
    out = to_batch([image], _entry(color="BGR", mean=[1, 2, 3], std=[2, 2, 2]), layout="NCHW")
    assert out.shape == (1, 3, 2, 3) and out.dtype == np.float32
    assert np.allclose(out[0, 0], (200 - 1) / 2.0) and np.allclose(out[0, 2], (10 - 3) / 2.0)
    assert to_batch([image], _entry(), layout="NHWC").shape == (1, 2, 3, 3)


def test_to_batch_prewhiten_matches_facenet_formula():
    image = np.random.RandomState(0).randint(0, 256, (4, 4, 3)).astype(np.uint8)
    out = to_batch([image], _entry(whiten=True), layout="NHWC")[0]
    x = image.astype(np.float64)
    expected = (x - x.mean()) / max(x.std(), 1.0 / np.sqrt(x.size))
    assert np.allclose(out, expected, atol=1e-5)
