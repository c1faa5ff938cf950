"""Known start-up chatter of the frameworks, silenced at the source. Environment variables do it
where the framework reads one (TF_CPP_MIN_LOG_LEVEL, MXNET_STORAGE_FALLBACK_LOG_VERBOSE); the
lines below are logged by C++ before any setting applies (TensorFlow's absl start-up, MXNet's
symbol upgrade), so the block that loads the framework runs with its stderr captured and every
captured line that is not known chatter is written back. Errors are never dropped."""
import contextlib
import os
import re
import sys
import tempfile

TENSORFLOW = re.compile(r"All log messages before absl::InitializeLog\(\)|port\.cc:\d+\] oneDNN custom operations are on")
MXNET = re.compile(r"Loading symbol saved by previous version|Symbol successfully upgraded|"
                   r"MXNET_SUBGRAPH_BACKEND=NONE is detected|Subgraph backend MKLDNN is activated|"
                   r"optimization pass from backend MKLDNN is disabled")


@contextlib.contextmanager
def chatter_filtered(noise):
    """Run the block with file descriptor 2 captured, then write back every line that does not
    match the `noise` pattern (also when the block raises)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(True):
                if not noise.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
