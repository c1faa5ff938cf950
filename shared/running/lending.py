"""A root caller's writable folders lent to the images' unprivileged user while containers run.

The containers of a root caller run as IMAGE_USER, which cannot write into root's folders. While
any container runs, the folders' directories are the user's; when the last one ends, every
directory and file the user owns there goes back to root (except what it owned before the first
loan), so the outputs end up the caller's as usual. The runs holding a loan are kept beside the
folders (`.lent.json` in the first one, under an exclusive lock on `.lent.lock`), so overlapping
runs (the tasks of a cluster, processes sharing a workspace) neither give back a folder another
run still writes nor lose what was the user's before; a holder whose process died on this host
no longer counts.
"""
import contextlib
import fcntl
import json
import os
import socket
import uuid

# The images' own unprivileged user; containers run as it when the caller is root.
IMAGE_USER = (1000, 1000)


def lent_folders(folders):
    """The context a container runs in: for a root caller, LentFolders(folders); else nothing."""
    return LentFolders(folders) if os.getuid() == 0 else contextlib.nullcontext()


def _alive(holder):
    host, pid = holder[0], holder[1]
    if host != socket.gethostname():
        return True  # another machine's process: it gives its loan back itself
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class LentFolders(object):
    def __init__(self, folders):
        self.folders = folders
        self.holder = [socket.gethostname(), os.getpid(), uuid.uuid4().hex]

    def _walk(self):
        for folder in self.folders:
            for top, dirs, files in os.walk(folder):
                yield top, True
                for name in files:
                    yield os.path.join(top, name), False

    @contextlib.contextmanager
    def _state(self):
        """The loan's holders and the paths the user owned before it, locked while in use."""
        for folder in self.folders:
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(self.folders[0], ".lent.json")
        with open(os.path.join(self.folders[0], ".lent.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = {"holders": [], "before": None}  # None: no loan (a dead holder's stays)
            if os.path.isfile(path):
                with open(path) as f:
                    state = json.load(f)
            state["holders"] = [h for h in state["holders"] if _alive(h)]
            yield state
            if state["holders"]:
                with open(path + ".tmp", "w") as f:
                    json.dump(state, f)
                os.rename(path + ".tmp", path)
            elif os.path.isfile(path):
                os.remove(path)

    def __enter__(self):
        with self._state() as state:
            if not state["holders"] and state["before"] is not None:  # a loan whose runs died
                self._give_back(state["before"])  # mid-run: handed back now, not at our end
                state["before"] = None
            new = state["before"] is None
            state["before"] = state["before"] or []
            for path, is_dir in self._walk():  # every time: root may have made folders since
                owner = os.lstat(path).st_uid
                if owner == IMAGE_USER[0] and new:
                    state["before"].append(path)  # the user's own before the loan: left as it is
                elif is_dir and owner == 0:
                    os.lchown(path, IMAGE_USER[0], IMAGE_USER[1])
            state["holders"].append(self.holder)
        return self

    def __exit__(self, *exc):
        with self._state() as state:
            state["holders"] = [h for h in state["holders"] if h != self.holder]
            if not state["holders"]:
                self._give_back(state["before"])
        return False

    def _give_back(self, before):
        before = set(before)
        for path, _ in self._walk():
            if path not in before and os.lstat(path).st_uid == IMAGE_USER[0]:
                os.lchown(path, 0, 0)
