"""Reading timelines back: one file, or a folder of them as one dataset.

A folder written by `fer-video annotate` or `batch` is one dataset: every timeline directly in
it, all of the one SCHEMA. A timeline is a `*.parquet` file carrying fer-video's metadata (the
`fer_video` key); other Parquet files (another program's, a query result) are skipped with one
line on stderr each, and so is a damaged timeline (a column missing, of another type, or with
nulls where a timeline has none: `schema.schema_problem`); hidden files (the temp files being
written) are skipped silently, and so are the MP4s, PNGs and HTML beside them. A video is known
by the video_id its timeline records, not by the file name, so a renamed timeline is still that
video; when two files hold the same video only one is read (the one named after it, else the
first) and the other is named on stderr. Filters are pushed down to Parquet: row groups whose
statistics rule them out are not read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fer_video.errors import first_line
from fer_video.expression.labels import EMOTIONS
from fer_video.timeline.schema import METADATA_KEY, SCHEMA, TimelineMetadata, schema_problem

_warned: set[str] = set()


def _warn(message: str) -> None:
    """Once per process: `load`, `summary` and `query` each scan the same folder."""
    if message not in _warned:
        _warned.add(message)
        print(f"fer-video: warning: {message}", file=sys.stderr)


@dataclass
class Timeline:
    path: Path
    video_id: str
    metadata: TimelineMetadata


def _read(path: Path, alone: bool) -> Timeline | None:
    """The timeline in `path`; None (said on stderr) for another program's Parquet file, unless it
    was asked for `alone`. A file that is not readable Parquet is an error naming it."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (OSError, pa.ArrowException) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({first_line(error)})") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        if alone:
            raise ValueError(f"{path}: not a fer-video timeline (no fer_video metadata)")
        _warn(f"{path}: skipped, not a fer-video timeline (no fer_video metadata)")
        return None
    known = {f.name for f in fields(TimelineMetadata)}
    try:
        meta = TimelineMetadata(**{k: v for k, v in json.loads(raw).items() if k in known})
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: unreadable fer-video metadata ({first_line(error)})") from None
    problem = schema_problem(schema, _null_counts(parquet))
    if problem is not None:
        # A timeline edited by hand or by another script: its columns would read as nulls,
        # fail a cast mid-query, or break a summary, far from the file that caused it.
        if alone:
            raise ValueError(f"{path}: a damaged timeline ({problem})")
        _warn(f"{path}: skipped, a damaged timeline ({problem})")
        return None
    return Timeline(path, meta.video_id or _video_id_of_rows(parquet) or path.stem, meta)


def _null_counts(parquet: pq.ParquetFile) -> dict[str, int]:
    """Nulls per top-level column by the footer's statistics (a column without them counts 0)."""
    counts: dict[str, int] = {}
    try:
        meta = parquet.metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                stats = column.statistics
                if stats is not None and stats.has_null_count:
                    name = column.path_in_schema.split(".")[0]
                    counts[name] = counts.get(name, 0) + stats.null_count
    except (OSError, pa.ArrowException):  # statistics that do not read: the data's own read says more
        return {}
    return counts


def _video_id_of_rows(parquet: pq.ParquetFile) -> str | None:
    """Older timelines do not record their video_id: the rows' own, from the footer's statistics."""
    try:
        index = parquet.schema_arrow.get_field_index("video_id")
        if index < 0 or parquet.metadata.num_row_groups == 0:
            return None
        stats = parquet.metadata.row_group(0).column(index).statistics
        return stats.min if stats is not None and stats.has_min_max and stats.min == stats.max else None
    except (OSError, pa.ArrowException):
        return None


def scan(path_or_folder: str | Path) -> list[Timeline]:
    """The timelines of a file or folder (see the module's docstring), sorted by file name.
    Raises FileNotFoundError for a missing path and ValueError for a folder without timelines, a
    file that is not one, or a file that is not readable Parquet."""
    path = Path(path_or_folder).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        return [_read(path, alone=True)]
    files = sorted(p for p in path.glob("*.parquet") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{path}: no timelines (*.parquet) in this folder")
    found = [t for t in (_read(p, alone=False) for p in files) if t is not None]
    if not found:
        raise ValueError(f"{path}: no fer-video timelines in this folder")
    by_video: dict[str, Timeline] = {}
    for timeline in sorted(found, key=lambda t: (t.path.stem != t.video_id, t.path.name)):
        kept = by_video.setdefault(timeline.video_id, timeline)
        if kept is not timeline:
            _warn(f"{timeline.path}: skipped, it holds video {timeline.video_id!r} as {kept.path.name} does")
    return sorted(by_video.values(), key=lambda t: t.path.name)


def timeline_files(path_or_folder: str | Path) -> list[Path]:
    """The timeline files of a dataset (see `scan`), sorted."""
    return [t.path for t in scan(path_or_folder)]


def dataset(path_or_folder: str | Path) -> ds.Dataset:
    """The folder (or file) as one pyarrow dataset of SCHEMA."""
    return timeline_dataset(scan(path_or_folder))


def timeline_dataset(timelines: list[Timeline]) -> ds.Dataset:
    """These timelines as one pyarrow dataset of SCHEMA (a column an older file lacks reads as null)."""
    return ds.dataset([str(t.path) for t in timelines], format="parquet", schema=SCHEMA)


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
    if start is not None and end is not None and not float(start) < float(end):
        # Nothing is both at or after start and before end: say so rather than give no rows.
        raise ValueError(f"--start {float(start):g} s is not before --end {float(end):g} s: an empty time range")
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
    data = dataset(path_or_folder)
    try:
        table = data.to_table(columns=columns, filter=row_filter(video, track, start, end, label))
    except (OSError, pa.ArrowException) as error:  # a file whose footer reads but whose data does not
        raise ValueError(f"{path_or_folder}: unreadable timeline data ({first_line(error)})") from None
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


def require_tracks(path_or_folder: str | Path, video=None, track=None) -> None:
    """ValueError naming the tracks of `track` that none of the selected videos has (with the
    tracks there are), so that asking for one gives a line, not an empty table."""
    wanted = _as_list(track)
    if wanted is None:
        return
    present = load(path_or_folder, video=video, columns=["track_id"])["track_id"]
    have = sorted({int(t) for t in present})
    missing = [int(t) for t in wanted if int(t) not in have]
    if missing:
        videos = _as_list(video)
        where = (f"video {videos[0]!r}" if videos and len(videos) == 1 else
                 f"videos {', '.join(repr(v) for v in videos)}" if videos else str(path_or_folder))
        raise ValueError(f"no track {', '.join(map(str, missing))} in {where} "
                         f"(tracks: {', '.join(map(str, have)) or 'none'})")


def warn_if_range_empty(path_or_folder: str | Path, video=None, track=None, start=None, end=None) -> None:
    """One line on stderr when --start/--end leave no row of a selection that has some."""
    if start is None and end is None:
        return
    times = load(path_or_folder, video=video, track=track, columns=["timestamp_s"])["timestamp_s"]
    if not len(times):
        return
    span = (f"from {start:g} s to {end:g} s" if start is not None and end is not None
            else f"from {start:g} s on" if start is not None else f"before {end:g} s")
    edge = (f"the last one is at {times.max():g} s" if start is not None and times.max() < start
            else f"the first one is at {times.min():g} s" if end is not None and times.min() >= end
            else f"faces are seen from {times.min():g} s to {times.max():g} s")
    _warn(f"no face rows {span} ({edge})")


def load_metadata(path_or_folder: str | Path) -> dict[str, TimelineMetadata]:
    """Each timeline's metadata, by video id (the one its rows carry, whatever the file is called)."""
    return {t.video_id: t.metadata for t in scan(path_or_folder)}
