"""Progress of long work, one helper for the tasks and the services: a tqdm bar with rate and
ETA on a terminal; a plain line every ~10% (also with rate and ETA) when stderr goes to a log
file or a pipe, where a bar would print nothing useful. Python-2.7 compatible."""
from __future__ import absolute_import, division, print_function

import sys
import time

TENTHS = 10  # a log line each time another tenth of the work is done


class LogLines(object):
    """tqdm's update/close for logs: `desc: 30% (300/1000 img), 12.3 img/s, ETA 57 s`."""

    def __init__(self, total, desc, unit, stream):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n, self.started, self.next_tenth = 0, time.time(), 1

    def update(self, n=1):
        self.n += n
        if self.total and self.n * TENTHS >= self.next_tenth * self.total:
            self.next_tenth = self.n * TENTHS // self.total + 1
            elapsed = max(time.time() - self.started, 1e-9)
            rate = self.n / elapsed
            eta = (self.total - self.n) / rate if rate else 0.0
            self.stream.write("%s: %3d%% (%d/%d %s), %.1f %s/s, ETA %.0f s\n"
                              % (self.desc, 100 * self.n // self.total, self.n, self.total, self.unit, rate,
                                 self.unit, eta))
            self.stream.flush()

    def close(self):
        """Nothing to finish: the last update printed 100%."""


def bar(total, desc, unit="it", stream=None):
    """A progress object with update(n) and close(): tqdm on a terminal (where tqdm is
    installed), else log lines every ~10%."""
    stream = stream or sys.stderr
    if stream.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit, file=stream)
    return LogLines(total, desc, unit, stream)


def iterate(items, desc, unit="it", stream=None):
    """Yield the items of a sized collection, showing progress (bar()) as they are consumed."""
    progress = bar(len(items), desc, unit, stream)
    for item in items:
        yield item
        progress.update(1)
    progress.close()
