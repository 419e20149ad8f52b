"""Writing a timeline to Parquet atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_video.expression.labels import EMOTIONS
from fer_video.outputs import atomic_path
from fer_video.timeline.schema import METADATA_KEY, SCHEMA, TimelineMetadata


def to_table(rows: pd.DataFrame, metadata: TimelineMetadata) -> pa.Table:
    """The timeline DataFrame as a table of SCHEMA (zero rows allowed), then its other columns (a
    `Faces.data` column the pipeline wrote) as they are: rewriting a timeline (`fer-video link`)
    keeps every column it had."""
    rows = rows.copy()
    rows["label"] = pd.Categorical(rows["label"], categories=list(EMOTIONS))
    if "person_id" not in rows:  # rows made without person linking: each track its own person
        rows["person_id"] = rows["track_id"]
    if "person" not in rows:
        rows["person"] = None
    extra = [c for c in rows.columns if c not in SCHEMA.names]
    table = pa.Table.from_pandas(rows[[*SCHEMA.names, *extra]], preserve_index=False)
    table = table.cast(pa.schema([*SCHEMA, *(table.schema.field(c) for c in extra)]))
    return table.replace_schema_metadata({METADATA_KEY: metadata.to_bytes()})


def write_timeline(rows: pd.DataFrame, metadata: TimelineMetadata, path: str | Path) -> Path:
    """`rows` (a timeline DataFrame) written to `path`, as `write_table` writes."""
    return write_table(to_table(rows, metadata), path)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write a timeline table to a hidden temp file of this call's own, then rename: no reader or
    `*.parquet` glob ever sees a half-written file, and concurrent writers never share one."""
    path = Path(path)
    try:
        with atomic_path(path) as temp:
            pq.write_table(table, temp, compression="zstd")
    except OSError as error:  # a full disk, a folder gone: name the file, not only errno
        raise OSError(error.errno, f"{path}: cannot write the timeline: {error.strerror or error}") from error
    return path
