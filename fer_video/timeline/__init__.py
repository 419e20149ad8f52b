"""The emotion timeline: its Parquet schema, writing it, and reading it back.

The names below load on first use: checking whether a file is one of our timelines (a batch's
discovery, before its first line) needs the schema, not pandas."""

__all__ = ["COLUMNS", "SCHEMA", "TimelineMetadata", "load", "load_metadata"]

_WHERE = {"COLUMNS": "schema", "SCHEMA": "schema", "TimelineMetadata": "schema", "load": "read",
          "load_metadata": "read"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
