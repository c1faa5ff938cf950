"""Project settings from invoke.yaml, with environment overrides, for tasks and tests alike.

The tasks get invoke.yaml through invoke's own config (`c.config`, see pipeline/context.py); the
tests and tools read the file here. Both resolve the paths and FACES_* overrides with `resolve`.
"""
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_PATH = os.path.join(ROOT, "invoke.yaml")
ENV_OVERRIDES = {"workspace": "FACES_WORKSPACE", "data_dir": "FACES_DATA_DIR",
                 "weights_dir": "FACES_WEIGHTS_DIR", "installed_weights_dir": "FACES_INSTALLED_WEIGHTS_DIR",
                 "weights_cache": "FACES_WEIGHTS_CACHE"}
DEFAULTS = {"installed_weights_dir": ".weights", "weights_cache": ".weights/.downloads"}  # an older invoke.yaml


def resolve(settings):
    """The settings with FACES_* overrides applied and the folders made absolute (relative ones
    are relative to the project root)."""
    settings = dict(DEFAULTS, **settings)
    for key, variable in ENV_OVERRIDES.items():
        if os.environ.get(variable):
            settings[key] = os.environ[variable]
        settings[key] = os.path.abspath(os.path.join(ROOT, settings[key]))
    return settings


def load(path=None):
    with open(path or CONFIG_PATH) as f:
        return resolve(yaml.safe_load(f))


def under(folder, path):
    """`path` if absolute, else `folder`/`path`."""
    return path if os.path.isabs(path) else os.path.join(folder, path)


def weights_root(config):
    """The weights search path every service gets as --weights-root: weights_dir first, then
    installed_weights_dir (where `invoke weights.install` puts what it fetches), os.pathsep-joined
    (shared/models/registry.py roots)."""
    return os.pathsep.join([config["weights_dir"], config.get("installed_weights_dir") or config["weights_dir"]])
