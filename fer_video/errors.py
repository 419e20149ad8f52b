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


def first_line(error: BaseException) -> str:
    """The error's message, its first non-empty line only (DuckDB, pyarrow and ffmpeg wrap theirs
    over several), or its type's name when it has none."""
    return _first(str(error)) or type(error).__name__


def problem_of(error: BaseException) -> str:
    """What went wrong, in one line and without the file: an InputError's problem, else the
    exception's type and its message's first line."""
    if isinstance(error, InputError):
        return _first(error.problem) or "failed"
    message = _first(str(error))
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def one_line(error: BaseException, path: str | Path | None = None) -> str:
    """The line a user reads for a failure: `path: problem`. The path is the error's own for an
    InputError, else `path` when given: every command, the batch's report and Prefect's states
    say a failure the same way."""
    path = error.path if isinstance(error, InputError) else path
    return f"{path}: {problem_of(error)}" if path is not None else problem_of(error)


def _first(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
