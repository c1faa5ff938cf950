import os
import stat

import numpy as np
import pytest

from shared.storage import atomic_path, save_npy, sha256_file, stable_seed, write_json, read_json


def test_failed_write_leaves_nothing(tmp_path):
    target = str(tmp_path / "out.npy")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash mid-write")
    assert os.listdir(str(tmp_path)) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = str(tmp_path / "out.npy")
    save_npy(target, np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash")
    assert list(np.load(target)) == [0, 1, 2]


def test_written_files_get_normal_permissions(tmp_path):
    write_json(str(tmp_path / "m.json"), {"a": 1})
    assert read_json(str(tmp_path / "m.json")) == {"a": 1}
    assert os.stat(str(tmp_path / "m.json")).st_mode & stat.S_IROTH


def test_sha256_and_stable_seed(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(str(path)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert stable_seed(1, "a") == stable_seed(1, "a") != stable_seed(1, "b")
    assert 0 <= stable_seed("x") < 2 ** 32
