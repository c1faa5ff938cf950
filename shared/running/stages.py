"""Make-like skipping for pipeline stages: a stage re-runs only when an output is missing or
the content of an input (or a parameter) changed since its last successful run."""
import hashlib
import os
import time

from shared.storage import read_json, write_json


def fingerprint(inputs, params):
    digest = hashlib.sha256(repr(sorted(params.items())).encode("utf-8"))
    for path in sorted(inputs):
        digest.update(path.encode("utf-8"))
        if os.path.isdir(path):
            files = sorted(os.path.join(base, f) for base, _, names in os.walk(path) for f in names
                           if not f.startswith("."))
        else:
            files = [path]
        for name in files:
            if not os.path.isfile(name):
                raise FileNotFoundError("stage input %s does not exist" % name)
            digest.update(name.encode("utf-8"))
            with open(name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


class Stage(object):
    """with-less helper: `if stage.needed(): ...work...; stage.done()`."""

    def __init__(self, stamps_dir, name, inputs, outputs, params=None):
        self.stamp = os.path.join(stamps_dir, name.replace("/", "__") + ".json")
        self.name, self.inputs, self.outputs, self.params = name, inputs, outputs, params or {}
        self.started = None

    def fresh(self):
        """The outputs exist and the inputs are those of the last successful run."""
        return (all(os.path.exists(p) for p in self.outputs) and os.path.isfile(self.stamp)
                and read_json(self.stamp)["fingerprint"] == fingerprint(self.inputs, self.params))

    def needed(self):
        if self.fresh():
            print("[%s] up to date" % self.name)
            return False
        self.started = time.time()
        print("[%s] running" % self.name)
        return True

    def done(self):
        seconds = round(time.time() - self.started, 1)
        write_json(self.stamp, {"fingerprint": fingerprint(self.inputs, self.params), "seconds": seconds})
        print("[%s] done in %.1f s" % (self.name, seconds))
        return seconds
