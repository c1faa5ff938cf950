"""What every task module shares: progress bars and one error-exit style."""
import functools
import os

from invoke import Exit


def progress(desc):
    """A wrapper that shows progress over a list: a bar on a terminal, a line every ~10% in a
    log (shared/progress.py)."""
    from shared.progress import iterate

    return lambda items: iterate(items, desc)


def fail(message, code=2):
    """End the task with the one error style of every task: `error: <message>` on one line (no
    traceback text; shared/schema.py one_line) and an exit code."""
    from shared.schema import one_line

    raise Exit("error: %s" % one_line(message), code=code)


def clean_errors(body):
    """Turn the errors a user can act on into one clear line and an exit code, not a traceback;
    any other error into one line too (exit 1; an OS error as its kind, file and reason:
    shared/schema.py describe), its traceback only with FACES_DEBUG=1. The workspaces the task
    locked (pipeline/context.py) are let go when it ends."""
    from pipeline.context import release_workspaces
    from shared.running.runner import ServiceError
    from shared.schema import ContractError, describe

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except Exit:  # a task's own fail()
            raise
        except (ServiceError, ContractError) as exc:
            fail(exc, exc.code)
        except (FileNotFoundError, FileExistsError) as exc:  # the path and the reason, not the errno alone
            fail("%s: %s" % (exc.filename, exc.strerror) if exc.filename else exc)
        except (ValueError, KeyError) as exc:
            fail(exc.args[0] if exc.args else exc)
        except Exception as exc:
            if os.environ.get("FACES_DEBUG") == "1":
                raise
            fail(describe(exc), 1)
        finally:
            release_workspaces()

    return wrapper
