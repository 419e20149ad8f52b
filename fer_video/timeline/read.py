"""Reading timelines back: one file, or a folder of them as one dataset.

A folder written by `fer-video annotate` or `batch` is one dataset: every `*.parquet` directly in
it (hidden files, such as the `.<name>.part` files being written, are ignored; so are the MP4s,
PNGs and HTML beside them), all of the one SCHEMA. Filters are pushed down to Parquet: row groups
whose statistics rule them out are not read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fer_video.expression.labels import EMOTIONS
from fer_video.timeline.schema import METADATA_KEY, SCHEMA, TimelineMetadata

__all__ = ["timeline_files", "dataset", "load", "load_metadata", "row_filter"]


def timeline_files(path_or_folder: str | Path) -> list[Path]:
    """The timeline files of a dataset: the file itself, or every non-hidden `*.parquet` directly
    in the folder, sorted. Raises FileNotFoundError for a missing path and ValueError for a
    folder with no timelines in it."""
    path = Path(path_or_folder).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.glob("*.parquet") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{path}: no timelines (*.parquet) in this folder")
    return files


def dataset(path_or_folder: str | Path) -> ds.Dataset:
    """The folder (or file) as one pyarrow dataset of SCHEMA."""
    return ds.dataset([str(p) for p in timeline_files(path_or_folder)], format="parquet", schema=SCHEMA)


def _as_list(value) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, int)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def row_filter(video=None, track=None, start: float | None = None, end: float | None = None,
               label=None) -> ds.Expression | None:
    """The pyarrow filter expression for `load`'s arguments (None when there is nothing to filter).

    video and label take one value or a list; track one id or a list; start <= timestamp_s < end.
    """
    parts = []
    videos = _as_list(video)
    if videos is not None:
        parts.append(pc.field("video_id").isin([str(v) for v in videos]))
    tracks = _as_list(track)
    if tracks is not None:
        parts.append(pc.field("track_id").isin(pa.array([int(t) for t in tracks], pa.int32())))
    if start is not None:
        parts.append(pc.field("timestamp_s") >= float(start))
    if end is not None:
        parts.append(pc.field("timestamp_s") < float(end))
    labels = _as_list(label)
    if labels is not None:
        unknown = [str(x) for x in labels if x not in EMOTIONS]
        if unknown:
            raise ValueError(f"unknown label {', '.join(unknown)} (labels: {', '.join(EMOTIONS)})")
        parts.append(pc.field("label").isin(labels))
    if not parts:
        return None
    expression = parts[0]
    for part in parts[1:]:
        expression = expression & part
    return expression


def load(path_or_folder: str | Path, video=None, track=None, start: float | None = None,
         end: float | None = None, label=None, columns: list[str] | None = None) -> pd.DataFrame:
    """A timeline file, or a folder of them, as one DataFrame (one row per frame and face).

    Filters are pushed down to Parquet: `video` (video_id, one or a list), `track` (track_id, one
    or a list), `start` <= timestamp_s < `end` (seconds), `label` (smoothed label, one or a list).
    `columns` picks columns (default: all of SCHEMA). Rows are sorted by video_id, frame_index,
    track_id; `label` is a pandas Categorical with the seven emotions as its categories.
    """
    if columns is not None:
        unknown = [c for c in columns if c not in SCHEMA.names]
        if unknown:
            raise ValueError(f"unknown column {', '.join(unknown)}")
    wanted = columns
    if columns is not None and "person_id" in columns and "track_id" not in columns:
        columns = [*columns, "track_id"]  # an older timeline's person_id is its track_id
    table = dataset(path_or_folder).to_table(columns=columns, filter=row_filter(video, track, start, end, label))
    frame = table.to_pandas()
    if "person_id" in frame:
        # Timelines from before person ids have no such column: each track is its own person.
        frame["person_id"] = frame["person_id"].fillna(frame["track_id"]).astype(np.int32)
    if wanted is not None and list(frame.columns) != list(wanted):
        frame = frame[wanted]
    if "label" in frame:
        frame["label"] = frame["label"].astype(pd.CategoricalDtype(list(EMOTIONS)))
    keys = [k for k in ("video_id", "frame_index", "track_id") if k in frame]
    if keys:
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    return frame


def load_metadata(path_or_folder: str | Path) -> dict[str, TimelineMetadata]:
    """Each timeline's metadata, by video id (the file's stem, which is its rows' video_id)."""
    known = {f.name for f in fields(TimelineMetadata)}
    out = {}
    for path in timeline_files(path_or_folder):
        schema = pq.read_schema(path)
        if schema.metadata and METADATA_KEY in schema.metadata:
            values = json.loads(schema.metadata[METADATA_KEY])
            out[path.stem] = TimelineMetadata(**{k: v for k, v in values.items() if k in known})
    return out
