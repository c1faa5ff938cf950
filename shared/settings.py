"""Project settings from invoke.yaml, with environment overrides, for tasks and tests alike."""
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_OVERRIDES = {"workspace": "FACES_WORKSPACE", "data_dir": "FACES_DATA_DIR",
                 "weights_dir": "FACES_WEIGHTS_DIR"}


def load(path=None):
    with open(path or os.path.join(ROOT, "invoke.yaml")) as f:
        settings = yaml.safe_load(f)
    for key, variable in ENV_OVERRIDES.items():
        if os.environ.get(variable):
            settings[key] = os.environ[variable]
        settings[key] = os.path.abspath(os.path.join(ROOT, settings[key]))
    return settings


def under(folder, path):
    """`path` if absolute, else `folder`/`path`."""
    return path if os.path.isabs(path) else os.path.join(folder, path)
