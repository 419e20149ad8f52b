"""Every shared option, declared once: its flag, help, choices and default.

A pipeline option is a field of `fer_video.jobs.AnnotateOptions` declared with `option(...)`: the
field's default is the option's default, and the command line (`annotate`, `demo`, `batch`,
`serve`: fer_video/cli/) and the annotate-folder flow's parameters (flows/batch.py) are made from
the field. Adding a pipeline option is one field there. The options that are not the pipeline's
(which inputs, how many at a time, output, where the work runs) are the `Option` rows below.

Importing this module costs nothing (no numpy, no Prefect): the CLI builds its parser from it
before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def in_range(low: int, high: int | None = None):
    """argparse `type`: an integer from `low` to `high` (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            limits = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {limits}")
        return value

    parse.__name__ = "integer"
    return parse


def score(text: str) -> float:
    """argparse `type`: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: must be between 0 and 1")
    return value


@dataclass(frozen=True)
class Option:
    """One option: its flag and help, and what argparse needs to read it.

    A bool option is a switch (`store_true`); `invert` makes `--no-X` the switch of a field X
    that is on by default. For a pipeline option, `name` is its AnnotateOptions field, `default`
    the field's default and `path` whether the field is a Path (filled in by `pipeline_options`).
    """

    flag: str
    help: str
    default: Any = None
    type: Callable | None = None
    choices: Any = None
    metavar: str | None = None
    invert: bool = False  # `--no-X` for a field X that is True by default
    name: str = ""  # the AnnotateOptions field (pipeline options only)
    param: str | None = ""  # the annotate-folder flow's parameter ("": the field's name, else the dest; None: none)
    folder: bool = True  # a pipeline option batch, serve and the folder flow take too (False: per input)
    path: bool = False  # a path: a str on the command line and in flow parameters, a Path in AnnotateOptions
    resolve: bool = False  # made absolute when read from the command line
    omit_default: bool = False  # a flow parameter only when set, so the deployments stored before stay as they were

    @property
    def dest(self) -> str:
        """The argparse attribute: the flag's name (`--no-video` -> no_video)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def parameter(self) -> str | None:
        """The annotate-folder flow's parameter, or None."""
        return (self.name or self.dest) if self.param == "" else self.param

    @property
    def switch(self) -> bool:
        return isinstance(self.default, bool)

    def argparse_kwargs(self) -> dict:
        if self.switch:
            return dict(action="store_true", help=self.help)
        given = dict(type=self.type, choices=self.choices, metavar=self.metavar)
        default = str(self.default) if self.path and self.default is not None else self.default
        return dict(default=default, help=self.help, **{k: v for k, v in given.items() if v is not None})

    def from_args(self, args) -> Any:
        """The option's value in AnnotateOptions from parsed arguments."""
        value = getattr(args, self.dest)
        if self.invert:
            return not value
        if self.path and value is not None:
            return Path(value).resolve() if self.resolve else Path(value)
        return value

    def to_parameter(self, args) -> Any:
        """The option's value as the folder flow's parameter (plain, so a deployment can store it;
        paths absolute, as the runs may start elsewhere)."""
        value = getattr(args, self.dest)
        if self.invert:
            return not value
        if self.path and value is not None:
            return str(Path(value).resolve())
        return value

    @property
    def parameter_default(self) -> Any:
        return str(self.default) if self.path and self.default is not None else self.default

    def from_parameter(self, value) -> Any:
        return Path(value) if self.path and value is not None else value


def option(default, flag: str, help: str, **how) -> Any:
    """An AnnotateOptions field that is also a pipeline option: `--flag`, its help, its argparse
    `type`/`choices`/`metavar`, and `Option`'s other settings."""
    return dataclasses.field(default=default, metadata={"option": Option(flag, help, **how)})


@functools.cache
def pipeline_options() -> tuple[Option, ...]:
    """The pipeline's options, in AnnotateOptions' field order, each with its field's name and default."""
    from fer_video.jobs import AnnotateOptions  # here, not above: jobs declares its fields with `option`

    found = []
    for field in dataclasses.fields(AnnotateOptions):
        declared = field.metadata.get("option")
        if declared is None:
            continue
        found.append(dataclasses.replace(declared, name=field.name, default=field.default,
                                         path="Path" in str(field.type)))
        if found[-1].switch and found[-1].default is not found[-1].invert:
            raise TypeError(f"{field.name}: a switch is off by default, or `--no-...` with invert=True")
    return tuple(found)


def pipeline_option(name: str) -> Option:
    return next(o for o in pipeline_options() if o.name == name)


# --- The options that are not the pipeline's -------------------------------------------------------

# batch and serve: which inputs, how many at a time.
FOLDER = (
    Option("--pattern", "only file names matching this glob (default: %(default)s)", default="*", metavar="GLOB"),
    Option("--concurrency", "inputs at a time in this process (default: %(default)s)", default=2,
           type=in_range(1, 64), metavar="N", param=None),  # the flow's task runner, not a parameter
    Option("--retries", "retries of a failed input (default: %(default)s)", default=1, type=in_range(0, 10),
           metavar="N"),
)
QUIET = Option("--quiet", "no progress bars or progress lines", default=False)
# Every command takes --verbose.
VERBOSE = Option("--verbose", "show tracebacks (and Prefect's logs, for a run in Prefect)", default=False,
                 param=None)
OUTPUT = (QUIET, VERBOSE)
# Where the work runs and whether Prefect records it.
PREFECT = Option("--prefect", "run in Prefect's flow engine: in the server configured, else an ephemeral one "
                              "(see README: when runs are recorded)", default=False, param=None)
ORCHESTRATION = (
    PREFECT,
    Option("--workers", "run the work on a local Dask cluster of N processes (a Prefect flow)",
           type=in_range(1, 256), metavar="N", param=None),
    Option("--dask-address", "run the work on this Dask scheduler (a Prefect flow)", metavar="tcp://HOST:PORT",
           param=None),
)


def folder_flow_options() -> tuple[Option, ...]:
    """The annotate-folder flow's parameters after `folder` (flows/batch.py), in order: the
    folder options, the pipeline's (less the per-input ones) and --quiet."""
    return tuple(o for o in (*FOLDER, *pipeline_options(), QUIET) if o.parameter and o.folder)


def folder_flow_annotate_options(parameters: dict, **extra):
    """AnnotateOptions from the annotate-folder flow's parameters."""
    from fer_video.jobs import AnnotateOptions

    values = {o.name: o.from_parameter(parameters[o.parameter]) for o in pipeline_options()
              if o.folder and o.parameter in parameters}
    return AnnotateOptions(**{**values, **extra})
