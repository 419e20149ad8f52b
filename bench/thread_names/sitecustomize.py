"""Loaded by bench/thread_cpu.py's runs (on PYTHONPATH): each Python thread gives the kernel its
name (prctl PR_SET_NAME, the first 15 bytes), so /proc tells the pipeline's threads apart.
Python 3.11 leaves every thread named after the process."""

import ctypes
import threading

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None

_run = threading.Thread.run


def _named_run(self):
    if _prctl is not None:
        _prctl(15, self.name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    return _run(self)


threading.Thread.run = _named_run
