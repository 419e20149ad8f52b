"""Errors that reach the user as one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A problem with one input file: missing, unreadable, corrupt, truncated, not a video."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem

    def __reduce__(self):
        # Crosses process boundaries intact (Dask workers, Prefect results).
        return (InputError, (self.path, self.problem))
