"""What every task module shares: progress bars and one error-exit style."""
import functools
import sys

from invoke import Exit


def progress(desc):
    """A wrapper that shows a tqdm bar on a terminal and stays quiet otherwise."""
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=desc, disable=not sys.stderr.isatty())


def fail(message, code=2):
    """End the task with the one error style of every task: `error: <message>` and an exit code."""
    raise Exit("error: %s" % message, code=code)


def clean_errors(body):
    """Turn the errors a user can act on into one clear line and an exit code, not a traceback."""
    from shared.runner import ServiceError

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except ServiceError as exc:
            fail(exc, exc.code)
        except (ValueError, KeyError, FileNotFoundError, FileExistsError) as exc:
            fail(exc.args[0] if exc.args else exc)

    return wrapper
