"""Writing a timeline to Parquet atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_video.expression.labels import EMOTIONS
from fer_video.interrupt import in_flight
from fer_video.timeline.schema import METADATA_KEY, SCHEMA, TimelineMetadata


def to_table(rows: pd.DataFrame, metadata: TimelineMetadata) -> pa.Table:
    """The timeline DataFrame as a table of exactly SCHEMA (zero rows allowed)."""
    rows = rows.copy()
    rows["label"] = pd.Categorical(rows["label"], categories=list(EMOTIONS))
    table = pa.Table.from_pandas(rows[SCHEMA.names], preserve_index=False)
    table = table.cast(SCHEMA)
    return table.replace_schema_metadata({METADATA_KEY: metadata.to_bytes()})


def write_timeline(rows: pd.DataFrame, metadata: TimelineMetadata, path: str | Path) -> Path:
    """Write to a hidden `.<name>.part`, then rename: no reader or `*.parquet` glob ever sees a
    half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    with in_flight(partial):
        _write(rows, metadata, path, partial)
    return path


def _write(rows: pd.DataFrame, metadata: TimelineMetadata, path: Path, partial: Path) -> None:
    try:
        try:
            pq.write_table(to_table(rows, metadata), partial, compression="zstd")
            os.replace(partial, path)
        except OSError as error:  # a full disk, a folder gone: name the file, not only errno
            raise OSError(error.errno, f"{path}: cannot write the timeline: {error.strerror or error}") from error
    finally:
        partial.unlink(missing_ok=True)
