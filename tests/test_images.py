import os

import numpy as np
import pytest
from PIL import Image

from shared.faces.images import ImageError, list_images, load_rgb, save_rgb


def _pattern(height=20, width=30):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 8 % 256, y * 12 % 256, (x + y) * 5 % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_modes_become_rgb_uint8(tmp_path, mode):
    path = str(tmp_path / "face.png") if mode != "CMYK" else str(tmp_path / "face.jpg")
    Image.fromarray(_pattern()).convert(mode).save(path)
    image = load_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (20, 30, 3)
    if mode == "L":
        assert np.array_equal(image[..., 0], image[..., 2])


def test_rgba_keeps_colour_and_drops_alpha(tmp_path):
    rgba = np.dstack([_pattern(), np.full((20, 30), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(str(tmp_path / "a.png"))
    assert np.array_equal(load_rgb(str(tmp_path / "a.png")), _pattern())


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(str(tmp_path / "deep.png"))
    image = load_rgb(str(tmp_path / "deep.png"))
    assert image.shape == (1, 3, 3)
    assert list(image[0, :, 0]) == [0, 128, 255]


def test_pgm(tmp_path):
    Image.fromarray(_pattern()[..., 0], "L").save(str(tmp_path / "face.pgm"))
    assert np.array_equal(load_rgb(str(tmp_path / "face.pgm"))[..., 1], _pattern()[..., 0])


def test_exif_orientation_is_applied(tmp_path):
    path = str(tmp_path / "rotated.jpg")
    img = Image.fromarray(_pattern(20, 30))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif, quality=100)
    assert load_rgb(path).shape == (30, 20, 3)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 40])
def test_unreadable_file_names_the_file(tmp_path, content):
    path = str(tmp_path / "broken.jpg")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert path in str(info.value)


def test_truncated_jpeg(tmp_path):
    good = str(tmp_path / "good.jpg")
    save_rgb(good, _pattern(64, 64))
    data = open(good, "rb").read()
    bad = str(tmp_path / "truncated.jpg")
    open(bad, "wb").write(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated.jpg"):
        load_rgb(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_rgb(str(tmp_path / "nope.png"))


def test_save_is_deterministic_and_atomic(tmp_path):
    a, b = str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")
    save_rgb(a, _pattern())
    save_rgb(b, _pattern())
    assert open(a, "rb").read() == open(b, "rb").read()
    assert sorted(os.listdir(str(tmp_path))) == ["a.jpg", "b.jpg"]  # no temporary files left
    with pytest.raises(ValueError, match="unknown image extension"):
        save_rgb(str(tmp_path / "c.xyz"), _pattern())


def test_list_images_is_sorted_and_filtered(tmp_path):
    for rel in ["b/2.jpg", "a/1.PNG", "a/notes.txt", "b/1.jpg"]:
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    assert list_images(str(tmp_path)) == [os.path.join("a", "1.PNG"), os.path.join("b", "1.jpg"),
                                          os.path.join("b", "2.jpg")]
