"""Bad input at the embed and align entrypoints: each kind ends with the contract's exit code and
one line naming the culprit, nothing written outside --out, no partial or stale output
(the checks: shared/contract/validate.py). Real processes on two or three LFW crops."""
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import LFW, ROOT, WEIGHTS, lfw_people
from shared.running.runner import LocalRunner
from shared.schema import load_outputs, read_meta

MODEL = ["--model", "model4_insightface", "--weights-root", WEIGHTS]


def run(service, args, entrypoint="embed", env=None, preexec_fn=None, wait=True):
    command = LocalRunner().command(service, entrypoint, [str(a) for a in args])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})), preexec_fn=preexec_fn)
    if not wait:
        return proc
    out, err = proc.communicate()
    return proc.returncode, out + err


def error_lines(output):
    return [line for line in output.splitlines() if ": error: " in line]


@pytest.fixture
def box(tmp_path):
    """tmp/images/{a,b,c}.jpg (three people), tmp/out/, and the list tmp/l.txt of a and b."""
    images = tmp_path / "images"
    images.mkdir()
    for letter, (_, paths) in zip("abc", lfw_people(3, per_person=1)):
        shutil.copyfile(os.path.join(LFW, paths[0]), str(images / (letter + ".jpg")))
    (tmp_path / "l.txt").write_text("a.jpg\nb.jpg\n")
    return tmp_path


def embed_args(box, listing="l.txt", out="out", *extra):
    return MODEL + ["--images", box / "images", "--list", box / listing, "--out", box / out] + list(extra)


def files_in(folder):
    return sorted(os.listdir(str(folder))) if os.path.isdir(str(folder)) else []


@pytest.mark.parametrize("entry", ["../l.txt", "/etc/hostname", "x/../../l.txt"])
def test_a_list_entry_outside_the_images_folder_is_refused(box, entry):
    (box / "bad.txt").write_text("a.jpg\n%s\n" % entry)
    code, output = run("insightface", embed_args(box, "bad.txt"))
    assert code == 2 and error_lines(output) and "line 2" in output and entry in output, output
    assert files_in(box / "out") == []
    code, output = run("align", ["--images", box / "images", "--list", box / "bad.txt", "--out", box / "al",
                                 "--detectors", "dlib"], entrypoint="align")
    assert code == 2 and entry in error_lines(output)[0], output
    assert files_in(box / "al") == []


def test_a_split_name_with_a_path_is_refused(box):
    code, output = run("insightface", embed_args(box, "l.txt", "out", "--split", "../../x"))
    assert code == 2 and "--split '../../x'" in error_lines(output)[0], output
    assert sorted(os.listdir(str(box))) == ["images", "l.txt"]  # not even --out was made


def test_out_that_is_a_file_is_refused(box):
    (box / "f").write_text("keep")
    code, output = run("insightface", embed_args(box, "l.txt", "f"))
    assert code == 2 and "--out '%s' is not a folder" % (box / "f") in output, output
    assert (box / "f").read_text() == "keep"


def test_invalid_utf8_in_a_list_names_the_line(box):
    (box / "bad.txt").write_bytes(b"a.jpg\nb\xff.jpg\n")
    code, output = run("insightface", embed_args(box, "bad.txt"))
    assert code == 2 and "line 2 is not valid UTF-8" in error_lines(output)[0], output
    assert files_in(box / "out") == []


def test_duplicates_are_reported_with_both_lines(box):
    (box / "bad.txt").write_text("a.jpg\nb.jpg\na.jpg\n")
    code, output = run("insightface", embed_args(box, "bad.txt"))
    assert code == 2 and "line 3: 'a.jpg' is listed twice (first on line 1)" in output, output
    assert files_in(box / "out") == []


def test_bom_quoted_csv_fields_and_hash_names_are_read(box):
    shutil.copyfile(str(box / "images" / "a.jpg"), str(box / "images" / "#a,1.jpg"))
    (box / "train.csv").write_bytes(u'\ufeffimage,label\n"#a,1.jpg",0\nb.jpg,1\n'.encode("utf-8"))
    code, output = run("insightface", embed_args(box, "train.csv"))
    assert code == 0, output
    assert load_outputs(str(box / "out"), "embeddings")["names"] == ["#a,1.jpg", "b.jpg"]


def test_a_replaced_image_with_the_same_mtime_is_embedded_again(box):
    assert run("insightface", embed_args(box))[0] == 0
    before = np.load(str(box / "out" / "embeddings.npy"))
    stat = os.stat(str(box / "images" / "b.jpg"))
    shutil.copyfile(str(box / "images" / "c.jpg"), str(box / "images" / "b.jpg"))
    os.utime(str(box / "images" / "b.jpg"), (stat.st_atime, stat.st_mtime))
    code, output = run("insightface", embed_args(box))
    assert code == 0 and "up to date" not in output, output
    after = np.load(str(box / "out" / "embeddings.npy"))
    (box / "c.txt").write_text("a.jpg\nc.jpg\n")
    assert run("insightface", embed_args(box, "c.txt", "fresh"))[0] == 0
    assert np.array_equal(after, np.load(str(box / "fresh" / "embeddings.npy")))
    assert not np.array_equal(before[1], after[1])


def test_other_flags_leave_no_stale_flip_or_aug_arrays(box):
    assert run("insightface", embed_args(box, "l.txt", "out", "--flip", "--augment", "1"))[0] == 0
    assert "embeddings_aug.npy" in files_in(box / "out")
    code, output = run("insightface", embed_args(box))
    assert code == 0, output
    assert files_in(box / "out") == ["embeddings.npy", "embeddings_index.csv", "embeddings_meta.json"]
    assert sorted(load_outputs(str(box / "out"), "embeddings")) == ["embeddings", "names"]
    assert sorted(read_meta(str(box / "out"), "embeddings")["files"]) == ["embeddings", "index"]


def _file_size_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))  # a 'full disk' for this process's writes
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.parametrize("debug", [False, True])
def test_a_failing_write_is_one_line_naming_the_os_error(box, debug):
    code, output = run("insightface", embed_args(box), env={"FACES_DEBUG": "1"} if debug else None,
                       preexec_fn=_file_size_limit)
    assert code != 0 and "File too large" in output, output
    assert ("Traceback" in output) == debug
    if not debug:
        assert code == 5 and len(error_lines(output)) == 1
    assert not [n for n in files_in(box / "out") if not n.startswith(".")]  # no output, no meta
    assert not [n for n in files_in(box / "out") if n.endswith(".tmp")]


def test_a_second_run_into_the_same_out_is_refused(box):
    (box / "out").mkdir()
    with open(str(box / "out" / ".embeddings.lock"), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, output = run("insightface", embed_args(box))
    assert code == 2 and "another run holds %s" % (box / "out") in error_lines(output)[0], output
    assert files_in(box / "out") == [".embeddings.lock"]


def test_a_huge_batch_size_is_capped_to_the_list(box):
    code, output = run("insightface", embed_args(box, "l.txt", "out", "--batch-size", "100000", "--flip"))
    assert code == 0, output
    assert read_meta(str(box / "out"), "embeddings")["timing"]["batch_size"] == 4  # 2 images x 2 views


def test_a_truncated_dlib_file_is_a_weights_error(box, tmp_path):
    source = subprocess.check_output([LocalRunner().python("dlib"), "-W", "ignore", "-c",
                                      "import face_recognition_models as m, os; print(os.path.dirname(m.__file__))"],
                                     text=True).strip()
    folder = tmp_path / "dlib"
    folder.mkdir()
    name = "dlib_face_recognition_resnet_model_v1.dat"
    with open(os.path.join(source, "models", name), "rb") as f:
        (folder / name).write_bytes(f.read(1 << 20))
    code, output = run("dlib", ["--model", "model5_dlib", "--images", box / "images", "--list", box / "l.txt",
                                "--out", box / "out", "--weights", folder])
    assert code == 4 and name in error_lines(output)[0] and "sha256" in output, output
    assert files_in(box / "out") == []


def test_more_workers_than_work_run_as_one(box):
    (box / "one.txt").write_text("a.jpg\n")
    code, output = run("dlib", ["--model", "model5_dlib", "--images", box / "images", "--list", box / "one.txt",
                                "--out", box / "out", "--workers", "2"])
    assert code == 0, output
    assert files_in(box / "out") == ["embeddings.npy", "embeddings_index.csv", "embeddings_meta.json"]


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, seconds=60):
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    return condition()


def test_killing_a_workers_parent_kills_its_workers_and_a_rerun_leaves_no_shard(box):
    # 48 images: enough work that both workers are seen at it even on a busy machine (with 12, one
    # CI run saw the whole job finish first)
    names = ["%s%d.jpg" % (letter, k) for letter in "abc" for k in range(16)]
    for name in names:
        shutil.copyfile(str(box / "images" / (name[0] + ".jpg")), str(box / "images" / name))
    (box / "many.txt").write_text("".join(n + "\n" for n in names))
    args = ["--model", "model5_dlib", "--images", box / "images", "--list", box / "many.txt", "--out", box / "out",
            "--chunk-size", "1", "--batch-size", "1"]
    parent = run("dlib", args + ["--workers", "2"], wait=False)
    partials = lambda: [n for n in files_in(box / "out") if n.endswith(".partial")]  # noqa: E731
    assert _wait_for(lambda: len(partials()) == 2), files_in(box / "out")
    workers = _children(parent.pid)
    assert len(workers) == 2
    parent.kill()
    parent.wait()
    assert _wait_for(lambda: not any(_alive(pid) for pid in workers))
    code, output = run("dlib", args)
    assert code == 0, output
    assert files_in(box / "out") == ["embeddings.npy", "embeddings_index.csv", "embeddings_meta.json"]
