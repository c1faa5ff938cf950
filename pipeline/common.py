"""What every task module shares: settings, workspace layout, progress bars."""
import functools
import os
import sys

from invoke import Exit

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


def clean_errors(body):
    """Turn the errors a user can act on into one clear line and an exit code, not a traceback."""
    from shared.runner import ServiceError

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except ServiceError as exc:
            raise Exit("error: %s" % exc, code=exc.code)
        except (ValueError, KeyError, FileNotFoundError, FileExistsError) as exc:
            raise Exit("error: %s" % (exc.args[0] if exc.args else exc), code=2)

    return wrapper
