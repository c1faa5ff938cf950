"""What a service container may see and use (shared/running/docker_runner.py runs it): its mounts, a
read-only root with a tmpfs /tmp, memory and process limits, and which path arguments it may
be given. Input checks on the host side of the door, beside shared/contract/validate.py's."""
import os

TMPFS = "/tmp:rw,exec,size=1g"  # the only writable place besides the workspace


def under(path, folders):
    path = os.path.abspath(path)
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def mounts(writable, readable):
    """`--volume` options: every writable folder read-write, then every existing readable one
    read-only at the same path, also where it lies inside a writable one (a read-only mount
    over the read-write one). A folder that is both is refused: it cannot be both."""
    both = [folder for folder in readable if folder in writable]
    if both:
        raise ValueError("%s is mounted read-write (the workspace) and must be read-only (weights, "
                         "data): keep them apart" % ", ".join(both))
    options = []
    for folder in writable:
        options += ["--volume", "%s:%s:rw" % (folder, folder)]
    for folder in readable:
        if os.path.isdir(folder):
            options += ["--volume", "%s:%s:ro" % (folder, folder)]
    return options


def limits(settings):
    """`--memory` / `--pids-limit` from the `containers` settings of invoke.yaml (None: none)."""
    settings = settings or {}
    options = []
    if settings.get("memory"):
        options += ["--memory", str(settings["memory"])]
    if settings.get("pids_limit"):
        options += ["--pids-limit", str(int(settings["pids_limit"]))]
    return options


def run_options(user, writable, readable, settings=None):
    """Every `docker run` option of a service container. --init: a real init as PID 1 passes the
    SIGTERM the client forwards to the service (a PID 1 Python would ignore it), so a container
    whose task died stops, and --rm removes it."""
    return (["--rm", "--init", "--network", "none", "--user", "%d:%d" % user, "--security-opt", "no-new-privileges",
             "--cap-drop", "ALL", "--read-only", "--tmpfs", TMPFS] + limits(settings)
            + mounts(writable, readable))


def check_paths(args, writable, readable):
    """Refuse a path argument the container would not see at the same path: an absolute one
    outside the mounts, or a relative one that names something here (the container's working
    folder is not ours). `NAME=PATH` arguments are checked on their PATH."""
    mounted = writable + readable
    for arg in args:
        whole = set([str(arg), str(arg).partition("=")[2]])
        # each folder of a search path (--weights-root A:B) on its own; the joined text is no folder
        for candidate in set(part for text in whole for part in text.split(os.pathsep)) - set([""]):
            if os.path.isabs(candidate) and not under(candidate, mounted):
                raise ValueError("path %s is outside the folders the container sees (read-write: %s; "
                                 "read-only: %s)" % (candidate, ", ".join(writable) or "-", ", ".join(readable) or "-"))
            if not os.path.isabs(candidate) and os.path.sep in candidate and os.path.exists(candidate):
                raise ValueError("relative path %s means another place inside the container: give it "
                                 "as an absolute path under the mounted folders" % candidate)
