"""What every task module shares: settings, workspace layout, progress bars."""
import os
import sys

from shared import settings as settings_mod


def load_config(workspace=None):
    """invoke.yaml (+ FACES_* environment overrides), with --workspace applied."""
    config = settings_mod.load()
    if workspace:
        config["workspace"] = os.path.abspath(workspace)
    return config


def workspace_paths(workspace):
    names = ("dataset", "aligned", "embeddings", "bench")
    return dict((name, os.path.join(workspace, name)) for name in names)


def progress(desc):
    """A wrapper that shows a tqdm bar on a terminal and stays quiet otherwise."""
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=desc, disable=not sys.stderr.isatty())
