"""Read the model registry (shared/models/models.yaml) and check a model's weight files."""
from __future__ import absolute_import, division, print_function

import copy
import os

import yaml

from shared.method.steps import STEPS
from shared.schema import EXIT_WEIGHTS, ContractError
from shared.storage import sha256_file

REGISTRY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models.yaml")
REQUIRED_OPTIONS = {"insightface": ("prefix", "epoch"), "dlib": ("chip", "descriptor_file")}


class WeightsError(ContractError):
    """Weight files missing or not the published ones; the message says what and where. An
    entrypoint exits with EXIT_WEIGHTS on it."""

    def __init__(self, message):
        ContractError.__init__(self, EXIT_WEIGHTS, message)


def _merge(base, override):
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Registry(object):
    def __init__(self, data, path=REGISTRY_PATH):
        self.path = path
        self.groups = data["groups"]
        self.head_defaults = data["head_defaults"]
        self.engines = data["engines"]
        self.models = data["models"]

    def with_models(self, models):
        """This registry's data with other model entries, as YAML would hold it (a --registry file)."""
        return {"engines": self.engines, "groups": self.groups, "head_defaults": self.head_defaults,
                "models": models}

    def with_groups(self, groups):
        """A registry whose ensemble group weights are these (a profile's `groups`: {group: {step:
        weight}}, merged over the registry's); refused unless each step's weights still sum to 1."""
        unknown = sorted(set(groups) - set(self.groups))
        if unknown:
            raise ValueError("ensemble groups %s are not in %s (groups: %s)" % (", ".join(unknown), self.path,
                                                                               ", ".join(sorted(self.groups))))
        data = self.with_models(self.models)
        data["groups"] = _merge(self.groups, groups)
        changed = Registry(data, self.path)
        wrong = [p for p in changed.problems() if p.startswith("group weights")]
        if wrong:
            raise ValueError("ensemble groups %s: %s" % (groups, "; ".join(wrong)))
        return changed

    def names(self, family=None, original=None):
        return [name for name, entry in sorted(self.models.items())
                if (family is None or entry["family"] == family)
                and (original is None or bool(entry.get("original")) == original)]

    def names_in_group(self, group):
        return [name for name in self.names() if self.models[name]["ensemble"]["group"] == group]

    def model(self, name):
        if name not in self.models:
            raise KeyError("unknown model '%s' (known: %s)" % (name, ", ".join(self.names())))
        entry = copy.deepcopy(self.models[name])
        entry["name"] = name
        entry["head"] = _merge(self.head_defaults, entry.get("head"))
        return entry

    def problems(self):
        """Inconsistencies in the registry, as readable strings (empty when all is well)."""
        found = []
        for step in STEPS:
            total = sum(group[step] for group in self.groups.values())
            if abs(total - 1.0) > 1e-9:
                found.append("group weights for %s sum to %.6f, not 1" % (step, total))
        for group in self.groups:
            within = [self.models[n]["ensemble"]["within"] for n in self.models
                      if self.models[n]["ensemble"]["group"] == group]
            if within and abs(sum(within) - 1.0) > 1e-9:
                found.append("within-group weights of '%s' sum to %.6f, not 1" % (group, sum(within)))
        families = set(entry["family"] for entry in self.models.values())
        if "native" not in self.engines or set(self.engines["native"]) != families:
            found.append("engines: native must list every family (%s)" % ", ".join(sorted(families)))
        for engine, offered in sorted(self.engines.items()):
            found.extend("engines: %s lists unknown family '%s'" % (engine, f) for f in offered if f not in families)
        distance = sum(entry["ensemble"]["distance"] for entry in self.models.values())
        if abs(distance - 1.0) > 1e-9:
            found.append("distance weights sum to %.6f, not 1" % distance)
        for name, entry in sorted(self.models.items()):
            for key in ("family", "weights", "input", "output", "embed", "ensemble"):
                if key not in entry:
                    found.append("%s: missing '%s'" % (name, key))
            if entry["ensemble"]["group"] not in self.groups:
                found.append("%s: unknown group '%s'" % (name, entry["ensemble"]["group"]))
            found.extend(_option_problems(name, entry))
            members = entry["weights"].get("distribution", {}).get("members", {})
            found.extend("%s: distribution member for '%s', which is not one of its weight files" % (name, f)
                         for f in sorted(members) if f not in entry["weights"]["files"])
        return found


def checkpoint_files(options):
    """The MXNet checkpoint files (symbol, params) an insightface entry's options name."""
    return "%s-symbol.json" % options["prefix"], "%s-%04d.params" % (options["prefix"], options["epoch"])


def is_onnx(entry):
    """An entry whose one weight file is an ONNX graph (options.format onnx), not its family's format."""
    return entry.get("options", {}).get("format") == "onnx"


def _option_problems(name, entry):
    options = entry.get("options", {})
    if is_onnx(entry):
        onnx = [f for f in entry["weights"]["files"] if f.endswith(".onnx")]
        return [] if len(onnx) == 1 else ["%s: format onnx needs exactly one .onnx weight file" % name]
    lacking = [key for key in REQUIRED_OPTIONS.get(entry["family"], ()) if key not in options]
    if lacking:
        return ["%s: options lack %s" % (name, ", ".join(lacking))]
    named = [value for key, value in sorted(options.items()) if key.endswith("_file")]
    if entry["family"] == "insightface":
        named.extend(checkpoint_files(options))
    return ["%s: options name '%s', which is not one of its weight files" % (name, filename)
            for filename in named if filename not in entry["weights"]["files"]]


def load(path=None):
    path = path or REGISTRY_PATH
    with open(path) as f:
        return Registry(yaml.safe_load(f), path)


def _package_dir(package):
    try:
        module = __import__(package)
    except ImportError:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(module.__file__)), "models")


def roots(weights_root):
    """The folders a --weights-root names, searched in order: one folder, or several joined by
    os.pathsep (the weights root, then the installed-weights folder `invoke weights.install` fills)."""
    return [root for root in (weights_root or "").split(os.pathsep) if root]


def _complete(entry, folder):
    return all(os.path.isfile(os.path.join(folder, name)) for name in entry["weights"]["files"])


def weights_dir(entry, weights_root=None, override=None):
    """Where the model's files are: --weights if given, else the first <root>/<dir> that holds
    them all, else its package's folder, else the first <root>/<dir> that exists (its files are
    then reported missing there), else the first one."""
    if override:
        return override
    candidates = [os.path.join(root, entry["weights"]["dir"]) for root in roots(weights_root)]
    for candidate in candidates:
        if _complete(entry, candidate):
            return candidate
    package = entry["weights"].get("package")
    found = _package_dir(package) if package else None
    if found:
        return found
    existing = [candidate for candidate in candidates if os.path.isdir(candidate)]
    return (existing or candidates or [os.path.join("weights", entry["weights"]["dir"])])[0]


def check_weights(entry, folder, verify=True):
    """Return {file: sha256} for the model's files in `folder`, or raise WeightsError."""
    files = entry["weights"]["files"]
    missing = [name for name in files if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise WeightsError(
            "model '%s': missing weight file(s) %s in %s. %s (or pass --weights DIR). They are "
            "distributed as: %s" % (entry["name"], ", ".join(missing), os.path.abspath(folder),
                                    "`invoke weights.install --models %s` fetches them" % entry["name"]
                                    if entry["weights"].get("distribution") else "Put the files there",
                                    entry["weights"]["source"]))
    digests = {}
    for name, expected in sorted(files.items()):
        path = os.path.join(folder, name)
        digests[name] = sha256_file(path)
        if verify and expected and digests[name] != expected:
            raise WeightsError(
                "model '%s': %s has sha256 %s, expected %s (a different or damaged file; the "
                "published one is: %s)" % (entry["name"], path, digests[name], expected,
                                           entry["weights"]["source"]))
    return digests
