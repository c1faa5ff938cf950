"""Every door, not only the front one: the task arguments that name a place, numbers, models named
by the user, OS errors with their file, and CSV names with a newline (pipeline/arguments.py,
pipeline/common.py, shared/contract/validate.py). Each case is run as a user runs it."""
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import LFW, ROOT, WEIGHTS, lfw_people, run_service, tiny_people

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
MODEL = "model4_insightface"


def invoke(*args, **kwargs):
    """(exit code, stdout + stderr) of `invoke ARGS` run from the project root."""
    env = dict(os.environ, **kwargs.pop("env", {}))
    proc = subprocess.run([INVOKE] + list(args), cwd=ROOT, capture_output=True, text=True, env=env, **kwargs)
    return proc.returncode, proc.stdout + proc.stderr


def error_line(output):
    lines = [line for line in output.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def tree(root):
    return sorted(os.path.join(base, name) for base, folders, files in os.walk(root) for name in folders + files)


@pytest.mark.parametrize("args", [
    ["heads.train", "--models", MODEL, "--step", "../../../escaped_step"],
    ["heads.train", "--models", MODEL, "--step", "step9"],
    ["ensemble.submit", "--models", MODEL, "--step", "step5"],
    ["ensemble.pseudo", "--models", MODEL, "--target", "step4"]])
def test_a_step_that_does_not_exist_is_refused_before_anything_is_written(args, tmp_path):
    workspace = str(tmp_path / "a" / "b" / "ws")
    code, output = invoke(*(args + ["--workspace", workspace]))
    assert code == 2 and "step6, step7" in error_line(output), output
    assert "KeyError" not in output and tree(str(tmp_path)) == []


# The README's commands with each option whose value becomes a part of a path; the folders a
# user names to write into (--workspace, --out, --gallery) are where writing belongs.
README_OPTIONS = [("heads.train", ["--models", MODEL], "--step"), ("heads.train", [], "--models"),
                  ("ensemble.pseudo", ["--models", MODEL], "--target"), ("ensemble.submit", ["--models", MODEL], "--step"),
                  ("ensemble.submit", [], "--models"), ("ensemble.prototypes", [], "--models"),
                  ("embed.run", [], "--models"), ("embed.run", ["--models", MODEL], "--splits"),
                  ("evaluate", [], "--models"), ("align.prealigned", [], "--crops"), ("align.run", [], "--crops"),
                  ("all", ["--profile", "smoke"], "--models"), ("bench.lfw-pairs", [], "--model"),
                  ("bench.ablation", [], "--rows"), ("weights.check", [], "--models"),
                  ("weights.install", [], "--models"), ("enroll", ["--people", "nobody"], "--models"),
                  ("images.build", [], "--only")]


def test_no_readme_command_writes_outside_the_workspace_through_its_path_options(tmp_path):
    workspace = tmp_path / "a" / "b" / "c" / "ws"
    (workspace / "dataset").mkdir(parents=True)
    outside = str(tmp_path / "outside" / "escaped")
    refused = []
    for i, (task, fixed, option) in enumerate(README_OPTIONS):
        value = "../../../escaped" if i % 2 else outside
        extra = [] if task in ("images.build", "weights.check", "weights.install", "enroll") else [
            "--workspace", str(workspace)]
        code, output = invoke(*([task] + fixed + [option, value] + extra))
        refused.append((task, option, code, error_line(output) if code else output[-500:]))
        assert tree(str(tmp_path)) == [str(p) for p in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c",
                                                        workspace, workspace / "dataset")], (task, option, output)
    assert all(code == 2 and option in line for _, option, code, line in refused), refused


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_the_embed_entrypoint_checks_workers(value, tmp_path):
    code, output = run_service("insightface", ["--model", MODEL, "--images", str(tmp_path), "--list",
                                               str(tmp_path / "list.txt"), "--out", str(tmp_path / "out"),
                                               "--workers", value])
    assert code == 2 and "argument --workers: must be" in output and value in output, output


@pytest.mark.parametrize("args, option", [(["--cluster", "local:0"], "--cluster"),
                                          (["--cluster", "local:1", "--shards", "abc"], "--shards"),
                                          (["--cluster", "local:1", "--shards", "-2"], "--shards"),
                                          (["--cluster", "local:1", "--shards", "0"], "--shards")])
def test_all_checks_its_numbers_at_the_door(args, option, tmp_path):
    code, output = invoke(*(["all", "--workspace", str(tmp_path / "ws")] + args))
    assert code == 2 and error_line(output).startswith("error: %s" % option), output
    assert not os.path.exists(str(tmp_path / "ws"))


@pytest.fixture
def damaged_weights(tmp_path):
    """A weights root where model4_insightface's files are there but not the published ones."""
    from shared.models import registry as registry_mod

    entry = registry_mod.load().model(MODEL)
    folder = tmp_path / "weights" / entry["weights"]["dir"]
    folder.mkdir(parents=True)
    for name in entry["weights"]["files"]:
        (folder / name).write_bytes(b"not the published weights")
    (tmp_path / "installed").mkdir()
    return {"FACES_WEIGHTS_DIR": str(tmp_path / "weights"), "FACES_INSTALLED_WEIGHTS_DIR": str(tmp_path / "installed")}


def test_a_model_named_with_models_whose_weights_fail_their_hash_ends_the_run(damaged_weights, tmp_path):
    workspace = str(tmp_path / "ws")
    code, output = invoke("all", "--profile", "smoke", "--models", MODEL, "--workspace", workspace, env=damaged_weights)
    line = error_line(output)
    assert code == 4 and MODEL in line and "sha256 mismatch" in line, output
    assert not os.path.exists(os.path.join(workspace, "dataset"))  # before any work
    code, output = invoke("all", "--profile", "smoke", "--workspace", workspace, env=damaged_weights)
    assert "[models] skipping %s: weights sha256 mismatch" % MODEL in output and code == 2, output


def _file_size_limit(size=512):
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))  # a 'full disk' for this process's writes
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_full_disk_in_a_task_names_the_file(tmp_path):
    dataset = tmp_path / "ws" / "dataset"
    dataset.mkdir(parents=True)
    (dataset / "train.csv").write_text("image,label\n" + "".join("p%d/%d.jpg,%d\n" % (i % 8, i, i % 8) for i in range(40)))
    proc = subprocess.run([INVOKE, "split", "--workspace", str(tmp_path / "ws")], cwd=ROOT, capture_output=True,
                          text=True, preexec_fn=_file_size_limit)
    line = error_line(proc.stdout + proc.stderr)
    assert proc.returncode == 1 and "%s: File too large" % (tmp_path / "ws" / "folds.csv") in line, line
    assert not os.path.exists(str(tmp_path / "ws" / "folds.csv"))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A workspace of the tiny benchmark with its folds and the smoke profile's embeddings."""
    source = tiny_people(tmp_path_factory.mktemp("people"))
    workspace = str(tmp_path_factory.mktemp("embedded") / "ws")
    for args in (["data.benchmark", "--source", source], ["align.prealigned", "--crops", "112x112"], ["split"],
                 ["embed.run", "--models", MODEL, "--profile", "smoke"]):
        code, output = invoke(*(args + ["--workspace", workspace]))
        assert code == 0, output
    return workspace


def test_a_full_disk_in_the_head_service_names_the_file_without_a_traceback(embedded, tmp_path):
    from shared.running.runner import LocalRunner

    out = tmp_path / "heads"
    command = LocalRunner().command("head", "train", [
        "--model", MODEL, "--embeddings", os.path.join(embedded, "embeddings", MODEL), "--folds",
        os.path.join(embedded, "folds.csv"), "--columns", "rt0", "--out", str(out), "--epochs", 2, "--patience", 1])
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
                          preexec_fn=lambda: _file_size_limit(2048))
    line = error_line(proc.stdout + proc.stderr)
    assert proc.returncode != 0 and "Exception ignored" not in proc.stderr, proc.stderr
    assert "File too large" in line and str(out / ".partial" / "rt0.npz") in line, line


def test_a_workspace_that_is_a_file_is_named(tmp_path):
    (tmp_path / "ws").write_text("")
    code, output = invoke("split", "--workspace", str(tmp_path / "ws"))
    assert code == 2 and error_line(output) == "error: --workspace '%s' is not a folder" % (tmp_path / "ws"), output


@pytest.fixture
def one_crop(tmp_path):
    """A folder with one real 112x112 crop and a list naming it."""
    name, images = lfw_people(1, per_person=1)[0]
    (tmp_path / "images").mkdir()
    shutil.copy(os.path.join(LFW, images[0]), str(tmp_path / "images" / "a.jpg"))
    (tmp_path / "list.txt").write_text("a.jpg\n")
    return ["--model", MODEL, "--images", str(tmp_path / "images"), "--list", str(tmp_path / "list.txt"),
            "--out", str(tmp_path / "out"), "--weights-root", WEIGHTS]


def test_entrypoint_options_naming_a_wrong_place_exit_2(one_crop, tmp_path):
    code, output = run_service("insightface", one_crop + ["--registry", str(tmp_path / "no-registry.yaml")])
    assert code == 2 and "--registry '%s': No such file" % (tmp_path / "no-registry.yaml") in output, output
    (tmp_path / "cache").write_text("")
    code, output = run_service("insightface", one_crop + ["--engine", "openvino", "--engine-cache", str(tmp_path / "cache")])
    assert code == 2 and "--engine-cache '%s' is not a folder" % (tmp_path / "cache") in output, output
    code, output = run_service("insightface", one_crop[:4] + ["--list", str(tmp_path / "images")] + one_crop[6:])
    assert code == 2 and "list file '%s' is a folder" % (tmp_path / "images") in output, output


def test_a_framework_error_is_one_line_without_its_traceback(one_crop, tmp_path):
    from shared.models import registry as registry_mod

    entry = registry_mod.load().model(MODEL)
    folder = tmp_path / "truncated"
    shutil.copytree(os.path.join(WEIGHTS, entry["weights"]["dir"]), str(folder))
    params = folder / "model-0000.params"
    params.write_bytes(params.read_bytes()[:4096])
    code, output = run_service("insightface", one_crop + ["--weights", str(folder), "--no-verify"])
    line = error_line(output)
    assert code == 5 and "Stack trace" not in line and "[bt]" not in line, output


def test_a_quoted_csv_name_keeps_its_newline(tmp_path):
    (name, images), = lfw_people(1, per_person=1)
    dataset = tmp_path / "ws" / "dataset"
    for folder in ("train", "test"):
        (dataset / folder).mkdir(parents=True)
    for target in (dataset / "train" / "x\ny.jpg", dataset / "train" / "ok.jpg", dataset / "test" / "t.jpg"):
        shutil.copy(os.path.join(LFW, images[0]), str(target))
    (dataset / "train.csv").write_text('image,label\n"x\ny.jpg",0\nok.jpg,1\n"gone\nz.jpg",1\n')
    code, output = invoke("validate", "--workspace", str(tmp_path / "ws"))
    line = error_line(output)
    assert code == 3 and "1 problem" in line and "train.csv line 5: 'gone\\nz.jpg'" in line, output
    assert "xy.jpg" not in line
