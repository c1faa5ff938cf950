"""One run context per invocation: the settings, the workspace layout, the model registry and
one service runner, built once and handed to every stage.

Settings come through invoke's own config (invoke.yaml beside tasks.py, `invoke -f FILE`,
INVOKE_* environment variables), then the FACES_* folder overrides (shared/running/settings.py).
"""
import os
import sys

from pipeline import arguments
from shared.contract import validate
from shared import hardware
from shared.models import registry as registry_mod
from shared.running import docker_runner
from shared.running import runner as runner_mod
from shared.running import settings as settings_mod
from shared.running.stages import Stage

INVOKE_OWN = ("run", "runners", "sudo", "tasks", "timeouts")  # invoke's settings, not the project's
WORKSPACE_FOLDERS = ("dataset", "aligned", "embeddings", "engines", "heads", "pseudo", "submissions", "reports",
                     "bench")
_RUNNERS = {}  # one runner per kind and set of folders in this process: images are checked once


def choose_runner(name, config):
    """A runner by name: local, docker, or auto (docker when a Docker engine answers, else
    local; the choice is logged). The docker runner mounts the folders of `config` (the run's
    settings): the workspace (and `also_writable`) read-write, the weights and data read-only.
    Make one per invocation: a docker runner asks the engine once and builds each image at most
    once."""
    version = None
    if name == "auto":
        version = docker_runner.docker_answers()
        name = "docker" if version else "local"
        sys.stderr.write("runner: %s (%s)\n" % (name, "Docker engine %s answers" % version if version
                                                    else "no Docker engine answers"))
    if name == "local":
        return runner_mod.LocalRunner()
    if name == "docker":
        return docker_runner.DockerRunner(writable=[config["workspace"]] + list(config.get("also_writable", ())),
                                          readable=[f for f in (config["weights_dir"], config.get("installed_weights_dir"),
                                                                config["data_dir"]) if f], version=version,
                                          limits=config.get("containers"))
    raise ValueError("unknown runner '%s' (known: local, docker, auto)" % name)


def _plain(value):
    """invoke's config proxies -> plain dicts and lists."""
    if hasattr(value, "keys"):
        return dict((key, _plain(value[key])) for key in value.keys())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def layout(workspace):
    """Where each stage of the pipeline reads and writes, under one workspace folder."""
    paths = dict((name, os.path.join(workspace, name)) for name in WORKSPACE_FOLDERS)
    paths.update(workspace=workspace, folds=os.path.join(workspace, "folds.csv"),
                 stamps=os.path.join(workspace, ".stamps"))
    return paths


class RunContext(object):
    def __init__(self, config, runner=None, profile=None):
        self.config = config
        self.paths = layout(config["workspace"])
        self.registry = registry_mod.load()
        self.profile_name = profile or config["profile"]
        if self.profile_name not in config["profiles"]:
            raise ValueError("unknown profile '%s' (invoke.yaml has: %s)"
                             % (self.profile_name, ", ".join(sorted(config["profiles"]))))
        self.profile = config["profiles"][self.profile_name]
        if self.profile.get("groups"):  # the profile's ensemble group weights over the registry's
            self.registry = self.registry.with_groups(self.profile["groups"])
        self.engine = config.get("engine") or self.profile.get("engine") or "native"
        if self.engine not in self.registry.engines:
            raise ValueError("unknown engine '%s' (engines: %s)" % (self.engine, ", ".join(sorted(self.registry.engines))))
        self.runner_name = runner or config["runner"]

    @property
    def workspace(self):
        return self.config["workspace"]

    @property
    def weights_root(self):
        """The weights search path a service gets as --weights-root (settings.weights_root)."""
        return settings_mod.weights_root(self.config)

    @property
    def seed(self):
        return int(self.config["seed"])

    @property
    def runner(self):
        """The service runner, made on first use and shared by every stage of this process."""
        key = (self.runner_name, self.workspace, self.weights_root, self.config["data_dir"],
               tuple(self.config.get("also_writable", ())))
        if key not in _RUNNERS:
            _RUNNERS[key] = choose_runner(self.runner_name, self.config)
        return _RUNNERS[key]

    def stage(self, name, inputs, outputs, params=None):
        """A stamped stage: re-runs only when an output is missing or an input changed."""
        return Stage(self.paths["stamps"], name, inputs, outputs, params)

    def flag(self, key):
        """The profile's switch `key`: true or false, never assumed when absent or misspelt."""
        value = self.profile.get(key)
        if not isinstance(value, bool):
            raise ValueError("invoke.yaml profile '%s': %s must be true or false, not %r"
                             % (self.profile_name, key, value))
        return value

    def choice(self, key, allowed):
        """The profile's setting `key`, one of `allowed`: never assumed when absent or misspelt."""
        value = self.profile.get(key)
        if value not in allowed:
            raise ValueError("invoke.yaml profile '%s': %s must be %s, not %r"
                             % (self.profile_name, key, " or ".join(allowed), value))
        return value

    def requested_models(self, override=None):
        """What `invoke all` embeds: `--models`, else the profile's `models`, else invoke.yaml's."""
        return override or self.profile.get("models") or self.config["models"]

    def workers(self, entry):
        """Embed processes of the model's service (invoke.yaml `workers`); auto: one per CPU this
        process may use (its affinity, shared/hardware.py), not a count tuned on one machine."""
        value = self.config["workers"].get(entry["family"], 1)
        if value == "auto":
            return hardware.available_cpus()
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError("invoke.yaml workers.%s must be auto or a count >= 1, not %r" % (entry["family"], value))
        return value

    def engine_for(self, entry):
        """The run's engine where the registry's `engines` offers it to the model's family, else native."""
        return self.engine if entry["family"] in self.registry.engines[self.engine] else "native"


def from_task(c, workspace=None, runner=None, profile=None, engine=None, lock=True):
    """The run context of a task: invoke's config (invoke.yaml), --workspace and --engine applied;
    with `lock` (a task that writes into the workspace) the workspace held by this run alone
    (hold_workspace). Check the task's other arguments (pipeline/arguments.py) before this."""
    settings = dict((key, _plain(c.config[key])) for key in c.config.keys() if key not in INVOKE_OWN)
    if "workspace" not in settings:  # a collection loaded without the project's invoke.yaml
        settings = settings_mod.load()
    config = settings_mod.resolve(settings)
    if workspace:
        config["workspace"] = os.path.abspath(workspace)
    if engine:
        config["engine"] = engine
    ctx = RunContext(config, arguments.runner(runner), profile)
    if lock:
        hold_workspace(ctx.workspace)
    return ctx


_LOCKED = []  # the workspace locks this process took for its tasks


def hold_workspace(workspace):
    """`workspace` a folder (made when missing) that this run alone writes into: one lock per
    workspace, `another run holds <workspace>` (exit 2) while another process has it. Taken by a
    task (`invoke all` in its driver: the stage functions it calls, here or on cluster workers,
    take none); the kernel drops it when the process dies, release_workspaces when the task ends."""
    validate.check_out(workspace, "--workspace")
    _LOCKED.append(validate.hold_lock(workspace, "workspace", whole=True))


def release_workspaces():
    while _LOCKED:
        validate.release_lock(_LOCKED.pop())
