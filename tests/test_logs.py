"""What a piped run prints: progress lines every ~10%, and no known framework chatter."""
import io
import os

from shared.progress import bar
from shared.quiet import MXNET, TENSORFLOW, chatter_filtered


def test_a_log_gets_a_progress_line_every_tenth_with_rate_and_eta():
    stream = io.StringIO()  # not a terminal, like a log file or a pipe
    progress = bar(1000, "embed train", unit="img", stream=stream)
    for _ in range(1000):
        progress.update(1)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("embed train:  10% (100/1000 img), ")
    assert lines[-1].startswith("embed train: 100% (1000/1000 img), ") and "img/s, ETA" in lines[-1]


def test_a_jump_past_several_tenths_prints_one_line():
    stream = io.StringIO()
    progress = bar(30, "heads", unit="epoch", stream=stream)
    progress.update(2)  # 7%: no line yet
    progress.update(25)  # early stopping skips the rest of a head's epochs
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == ["heads:  90% (27/30 epoch)"]


def test_known_chatter_is_dropped_and_every_other_line_kept(capfd):
    with chatter_filtered(MXNET):
        os.write(2, b"[09:46:15] ../src/nnvm/legacy_json_util.cc:208: Loading symbol saved by previous version "
                    b"v1.0.0. Attempting to upgrade...\nerror: a real problem\n")
    with chatter_filtered(TENSORFLOW):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"I0000 00:00:1796031988.043467    8301 port.cc:153] oneDNN custom operations are on.\n")
    assert capfd.readouterr().err == "error: a real problem\n"
