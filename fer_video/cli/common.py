"""What every command shares: the parser, options added from their one declaration
(fer_video/options.py), usage errors, and the lines a command prints about itself."""

from __future__ import annotations

import argparse
import sys

from fer_video.options import Option

EXIT_FAILED = 1  # some inputs failed
EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in the command line: one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """No abbreviations (`summary --out x` must not quietly mean --output), and argparse's own
    errors as one line like ours rather than a usage dump."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        command = self.prog.removeprefix("fer-video").strip()
        hint = f" (fer-video {command} --help)" if command else " (fer-video --help)"
        print(f"fer-video: error: {message}{hint}", file=sys.stderr)
        sys.exit(2)


def add(parser: argparse.ArgumentParser, *options: Option) -> None:
    """The options, as declared."""
    for option in options:
        parser.add_argument(option.flag, **option.argparse_kwargs())


def fail(message: str) -> None:
    print(f"fer-video: error: {message}", file=sys.stderr, flush=True)


def say(args, message: str) -> None:
    """What the command is about to do: its first line, on stderr (stdout keeps the results)."""
    if not args.quiet:
        print(f"fer-video: {message}", file=sys.stderr, flush=True)


def folder_name(path: str) -> str:
    return path.rstrip("/") + "/"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
