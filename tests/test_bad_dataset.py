"""A bad dataset is refused once, before any work (`invoke validate`, the first stage of
`invoke all`), with every problem at once, file and row named; pre-aligned crops follow a
replaced image. The checks: shared/contract/validate.py."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import LFW, ROOT, lfw_people
from shared.contract.validate import MAX_PROBLEMS, check_dataset
from shared.schema import ContractError

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")


def invoke(*args):
    proc = subprocess.run([INVOKE] + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def workspace(tmp_path):
    """dataset/ with train a.jpg (0), b.jpg (1) and test c.jpg: three LFW crops."""
    dataset = tmp_path / "ws" / "dataset"
    for folder in ("train", "test"):
        (dataset / folder).mkdir(parents=True)
    people = lfw_people(3, per_person=1)
    for (_, paths), target in zip(people, ["train/a.jpg", "train/b.jpg", "test/c.jpg"]):
        shutil.copyfile(os.path.join(LFW, paths[0]), str(dataset / target))
    (dataset / "train.csv").write_text("image,label\na.jpg,0\nb.jpg,1\n")
    (dataset / "benchmark.json").write_text("{}\n")  # pre-aligned: align.prealigned derives the crops
    return tmp_path / "ws"


def test_every_bad_row_is_reported_at_once_with_its_line(workspace):
    (workspace / "dataset" / "train.csv").write_text(
        "image,label\na.jpg,0\nb.jpg,abc\na.jpg,0\nb.jpg,-1\nb.jpg,1000\nb.jpg,5000\nnone.jpg,2\n../x.jpg,1\n")
    with pytest.raises(ContractError) as info:
        check_dataset(str(workspace / "dataset"))
    message = str(info.value)
    assert info.value.code == 2 and "7 problems" in message
    for expected in ("line 3: label 'abc' is not a non-negative integer", "line 4: 'a.jpg' is listed twice",
                     "line 5: label '-1'", "line 6: label 1000 is out of range", "line 7: label 5000",
                     "line 8: 'none.jpg': no such file", "line 9: '../x.jpg' leaves the images folder"):
        assert expected in message, message


@pytest.mark.parametrize("content,expected", [
    ("image\na.jpg\n", "has no column 'label'"), ("image,label\n", "names no images"),
    ("\ufeffimage,label\n\"a.jpg\",0\n", None)])
def test_missing_column_header_only_and_a_bom(workspace, content, expected):
    (workspace / "dataset" / "train.csv").write_bytes(content.encode("utf-8"))
    if expected is None:
        assert check_dataset(str(workspace / "dataset")) == {"train": 1, "identities": 1, "test": 1}
        return
    with pytest.raises(ContractError, match=expected):
        check_dataset(str(workspace / "dataset"))


def test_many_problems_show_the_first_ones_and_a_count(workspace):
    rows = "".join("x%d.jpg,0\n" % k for k in range(MAX_PROBLEMS + 5))
    (workspace / "dataset" / "train.csv").write_text("image,label\n" + rows)
    with pytest.raises(ContractError) as info:
        check_dataset(str(workspace / "dataset"))
    assert info.value.code == 3 and "%d problems" % (MAX_PROBLEMS + 5) in str(info.value)
    assert str(info.value).endswith("... and 5 more") and "x%d.jpg" % (MAX_PROBLEMS - 1) in str(info.value)


def test_a_corrupt_test_image_is_an_image_error(workspace):
    (workspace / "dataset" / "test" / "c.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ContractError) as info:
        check_dataset(str(workspace / "dataset"))
    assert info.value.code == 3 and "test/: 'c.jpg'" in str(info.value)


def test_invoke_all_stops_at_validate_before_any_work(workspace):
    (workspace / "dataset" / "train.csv").write_text("image,label\na.jpg,0\nb.jpg,abc\n")
    code, output = invoke("validate", "--workspace", workspace)
    assert code == 2 and "train.csv line 3: label 'abc'" in output, output
    code, output = invoke("all", "--profile", "smoke", "--models", "model4_insightface", "--workspace", workspace)
    assert code == 2 and "train.csv line 3: label 'abc'" in output and "Traceback" not in output, output
    assert sorted(os.listdir(str(workspace))) == ["dataset"]  # no stage wrote anything


def test_a_train_name_leaving_the_workspace_writes_nothing(workspace, tmp_path):
    (workspace / "dataset" / "train.csv").write_text("image,label\na.jpg,0\n../../../escaped.jpg,1\n")
    code, output = invoke("align.prealigned", "--crops", "112x112", "--workspace", workspace)
    assert code == 2 and "'../../../escaped.jpg' leaves the images folder" in output, output
    assert sorted(os.listdir(str(tmp_path))) == ["ws"] and sorted(os.listdir(str(workspace))) == ["dataset"]


def test_a_replaced_image_is_cropped_again(workspace):
    crop = workspace / "aligned" / "160x160" / "train" / "b.jpg"
    assert invoke("align.prealigned", "--crops", "160x160", "--workspace", workspace)[0] == 0
    before = crop.read_bytes()
    source = workspace / "dataset" / "train" / "b.jpg"
    stat = os.stat(str(source))
    shutil.copyfile(str(workspace / "dataset" / "train" / "a.jpg"), str(source))
    os.utime(str(source), (stat.st_atime, stat.st_mtime))
    code, output = invoke("align.prealigned", "--crops", "160x160", "--workspace", workspace)
    assert code == 0 and "1 new crop files" in output, output
    assert crop.read_bytes() != before
    assert crop.read_bytes() == (workspace / "aligned" / "160x160" / "train" / "a.jpg").read_bytes()


@pytest.mark.parametrize("debug", ["0", "1"])
def test_an_unforeseen_task_error_is_one_line_unless_debugging(workspace, debug):
    (workspace / "folds.csv").mkdir()  # where the split stage writes its file
    proc = subprocess.run([INVOKE, "split", "--workspace", str(workspace)], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, FACES_DEBUG=debug))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "folds.csv" in output and ("Traceback" in output) == (debug == "1"), output
    if debug == "0":
        assert [line for line in output.splitlines() if "folds.csv" in line] == [
            line for line in output.splitlines() if line.startswith("error: IsADirectoryError")]
    assert os.listdir(str(workspace / "folds.csv")) == [] and not [
        name for name in os.listdir(str(workspace)) if name.endswith(".tmp")]
