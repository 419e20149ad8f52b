"""How many threads the models may use in this process."""

from __future__ import annotations

import os


def model_threads() -> int:
    """$FER_VIDEO_THREADS, else every core this process may run on. Several worker processes on
    one machine should split the cores between them (flows/runners.py does for local clusters):
    each model kernel spreading over all cores in every process only adds contention."""
    value = os.environ.get("FER_VIDEO_THREADS")
    return max(1, int(value)) if value else len(os.sched_getaffinity(0))
