"""One run context per invocation: `invoke all` with the docker runner checks each service's
image once, not once per stage. A fake `docker` on FACES_DOCKER counts its calls and runs each
container's entrypoint in the service's local environment, so no engine is needed."""
import json
import os
import shutil
import stat
import subprocess
import sys

from conftest import LFW, ROOT, lfw_people, require

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
FAKE_DOCKER = r'''#!%(python)s
"""A docker stand-in: logs each call; `run` executes the entrypoint with the local runner."""
import json, os, subprocess, sys
args = sys.argv[1:]
with open(%(log)r, "a") as log:
    log.write(json.dumps(args) + "\n")
if args[0] == "version":
    print("20.10.24")
elif args[0] == "run":
    image = next(i for i, a in enumerate(args) if a.startswith("faces/"))
    env = dict(os.environ, PYTHONPATH=%(root)r)
    for i, a in enumerate(args[:image]):
        if a == "--env":
            key, value = args[i + 1].split("=", 1)
            env[key] = value
    service, entrypoint = args[image][len("faces/"):], args[image + 1]
    python = os.path.join(%(root)r, ".venvs", service, "bin", "python")
    script = os.path.join(%(root)r, "services", service, entrypoint + ".py")
    sys.exit(subprocess.call([python, script] + args[image + 2:], env=env))
'''


def fake_docker(tmp_path):
    log = str(tmp_path / "docker-calls.jsonl")
    path = tmp_path / "docker"
    path.write_text(FAKE_DOCKER % {"python": sys.executable, "log": log, "root": ROOT})
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path), log


def test_all_checks_each_image_once_per_invocation(tmp_path):
    source = tmp_path / "people"
    for name, _ in lfw_people(6, per_person=3):
        shutil.copytree(os.path.join(require(LFW), name), str(source / name))
    docker, log = fake_docker(tmp_path)
    workspace = str(tmp_path / "ws")
    env = dict(os.environ, FACES_DOCKER=docker)
    for args in (["data.benchmark", "--source", str(source)],
                 ["all", "--profile", "smoke", "--models", "model4_insightface", "--runner", "docker"]):
        proc = subprocess.run([INVOKE] + args + ["--workspace", workspace], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    calls = [json.loads(line) for line in open(log)]
    builds = sorted(c[c.index("--tag") + 1] for c in calls if c[0] == "build")
    runs = [c for c in calls if c[0] == "run"]
    assert builds == ["faces/head", "faces/insightface"]  # one check per image, whatever the stage count
    assert len(runs) >= 9  # embed x2, heads x3, pseudo x2, submit x3, evaluate: all through the one runner
    assert os.path.isfile(os.path.join(workspace, "submissions", "final.csv"))
