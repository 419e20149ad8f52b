"""SQL over a timeline folder with DuckDB, and writing any result table out.

The folder's timelines are the view `timeline` (the files `read.scan` accepts, one row per frame
and face, columns as in SCHEMA, and `frame_duration_s`: how long the row's frame shows, from its
timestamp to the next analysed frame's, as `summary` counts it: `timeline.durations`), so that
time on screen is `sum(frame_duration_s)`, exact at a variable frame rate too. `videos` has one
row per file with its metadata (video_id, width, height, fps, duration_s, frame_count, stride,
frame_step_s = stride / fps, the nominal step, model_name, detector, smoothing, ...).

The user's SQL runs sandboxed unless `allow_files`: one read-only statement (SELECT, or EXPLAIN
of one), and below that check DuckDB cannot touch a file at all. The timelines reach it as a
pyarrow dataset that pyarrow reads in batches as the query asks; DuckDB's own file system is off
(`enable_external_access = false`, no path allowed), no extension is installed or loaded,
Python variables are not scanned, and the configuration is locked so the SQL cannot turn any of
it back on. So no statement, however wrapped (EXPLAIN ANALYZE, a CTE, PRAGMA), can write or
read a file. Results are written by `write_result`, never by the SQL.
"""

from __future__ import annotations

import io
import math
import re
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from fer_video.errors import first_line
from fer_video.outputs import atomic_path
from fer_video.timeline.durations import nominal_step
from fer_video.timeline.read import scan, timeline_dataset
from fer_video.timeline.schema import TimelineMetadata

FORMATS = ("table", "csv", "json", "parquet")


def connect(path_or_folder: str | Path, allow_files: bool = False):
    """An in-memory DuckDB connection with the views `timeline` and `videos` over the folder;
    sandboxed (see the module's docstring) unless `allow_files`."""
    import duckdb

    timelines = scan(path_or_folder)
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    # DuckDB scans the dataset through pyarrow, which reads the files; DuckDB never opens them,
    # so its file system can be off entirely while the view still reads, in batches (filters
    # and projections pushed down), however large the folder.
    con.register("timeline_files", timeline_dataset(timelines))
    names = [f.name for f in fields(TimelineMetadata) if f.name not in ("video_id", "frame_ends")]
    rows, ends = [], []
    for t in timelines:
        meta = t.metadata
        record = {**asdict(meta), "video_id": t.video_id}
        record["frame_step_s"] = nominal_step(meta)
        record["timed"] = meta.frame_ends is not None
        rows.append(record)
        ends += [(t.video_id, int(i), float(s)) for i, s in meta.frame_ends or []]
    videos = pd.DataFrame(rows, columns=["video_id", *names[:8], "frame_step_s", *names[8:], "timed"])
    videos["duration_s"] = videos["duration_s"].astype(float)
    con.register("_videos_frame", videos)
    con.execute("CREATE TABLE _videos AS SELECT * FROM _videos_frame")
    con.execute("CREATE VIEW videos AS SELECT * EXCLUDE (timed) FROM _videos")
    con.unregister("_videos_frame")
    con.register("_ends_frame", pd.DataFrame(ends, columns=["video_id", "frame_index", "end_s"]).astype(
        {"video_id": str, "frame_index": "int64", "end_s": "float64"}))
    con.execute("CREATE TABLE _frame_ends AS SELECT * FROM _ends_frame")
    con.unregister("_ends_frame")
    # A frame shows until the next analysed frame: the next one with faces, or, where that is
    # not the next analysed frame, the end the writer recorded. Timelines from before frame ends
    # were recorded count the nominal step, as `summary` does.
    con.execute("""
        CREATE VIEW _frame_durations AS
        WITH frames AS (SELECT DISTINCT video_id, frame_index, timestamp_s FROM timeline_files),
        stepped AS (SELECT *, lead(timestamp_s) OVER (PARTITION BY video_id ORDER BY frame_index) AS next_s
                    FROM frames)
        SELECT s.video_id, s.frame_index,
               CASE WHEN v.timed THEN coalesce(e.end_s, s.next_s, v.frame_step_s + s.timestamp_s) - s.timestamp_s
                    ELSE v.frame_step_s END AS frame_duration_s
        FROM stepped s LEFT JOIN _videos v ON v.video_id = s.video_id
        LEFT JOIN _frame_ends e ON e.video_id = s.video_id AND e.frame_index = s.frame_index""")
    # Timelines from before person ids lack the column (null here): each track is its own person.
    con.execute("""
        CREATE VIEW timeline AS
        SELECT t.* REPLACE (coalesce(t.person_id, t.track_id)::INTEGER AS person_id), d.frame_duration_s
        FROM timeline_files t
        LEFT JOIN _frame_durations d ON d.video_id = t.video_id AND d.frame_index = t.frame_index""")
    if not allow_files:
        # No allowed_paths: a path allowed for reading is allowed for COPY ... TO as well.
        con.execute("SET python_enable_replacements = false")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


_READ_ONLY = ("SELECT", "EXPLAIN")
_EXPLAIN = re.compile(r"^\s*(/\*.*?\*/\s*|--[^\n]*\n\s*)*EXPLAIN\s+(ANALY[SZ]E\s+)?(\([^)]*\)\s*)?", re.I | re.S)


def _check_read_only(sql: str) -> None:
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise ValueError(f"SQL error: {first_line(error)}") from None
    if len(statements) != 1:
        raise ValueError(f"SQL: one query at a time ({len(statements)} statements given); "
                         "--allow-files runs several")
    kind = statements[0].type.name
    if kind == "EXPLAIN":
        # EXPLAIN ANALYZE runs the statement it wraps: that one must be a read query too. A
        # wrapping this does not see through is still stopped by the sandbox below.
        inner = _EXPLAIN.sub("", statements[0].query, count=1)
        try:
            wrapped = duckdb.extract_statements(inner)
        except duckdb.Error:
            wrapped = []
        if len(wrapped) == 1 and wrapped[0].type.name not in _READ_ONLY:
            kind = f"EXPLAIN {wrapped[0].type.name}"
    if kind not in _READ_ONLY:
        raise ValueError(f"SQL: only a read query (SELECT) is allowed, not {kind}; "
                         "--allow-files runs any statement with file access")


def query(path_or_folder: str | Path, sql: str, allow_files: bool = False) -> pd.DataFrame:
    """The result of `sql` over the folder's `timeline` (and `videos`) as a DataFrame.

    Errors in the SQL raise ValueError with DuckDB's first line ("Parser Error: ..."); so does
    anything but one read query, or a file access, unless `allow_files`."""
    import duckdb

    if not sql or not sql.strip():
        raise ValueError("empty SQL query")
    if not allow_files:
        _check_read_only(sql)
    con = connect(path_or_folder, allow_files)
    try:
        relation = con.sql(sql)
        return relation.df() if relation is not None else pd.DataFrame()
    except duckdb.Error as error:
        raise ValueError(f"SQL error: {first_line(error)}") from None
    finally:
        con.close()


def _cell(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def format_table(frame: pd.DataFrame, right: tuple[str, ...] = ()) -> str:
    """An aligned plain-text table: numbers (and the columns named in `right`) right-aligned,
    text left-aligned, a rule under the header, floats with at most four decimals."""
    if frame.columns.empty:
        return "(no columns)"
    columns = [str(c) for c in frame.columns]
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    numeric = [(pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))
               or str(c) in right for c in frame.columns]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    out.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return "\n".join(out)


def write_result(frame: pd.DataFrame, fmt: str = "table", output: str | Path | None = None,
                 table=format_table, dataset: str | Path | None = None) -> Path | None:
    """Write `frame` as an aligned table, CSV, JSON (an array of records) or Parquet, to `output`
    or, except Parquet, stdout. Files are written to a hidden temp file first, then renamed.
    `dataset` (the folder queried) guards against writing a `.parquet` into it, where it would
    be read as a timeline."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if fmt == "parquet" and (output is None or str(output) == "-"):
        raise ValueError("--format parquet needs --output FILE")
    if output is not None and str(output) != "-" and Path(output).is_dir():
        raise ValueError(f"{output}: is a folder; -o takes a file name")
    if output is not None and dataset is not None:
        out, folder = Path(output).resolve(), Path(dataset).resolve()
        if out.suffix == ".parquet" and (out.parent == folder or out == folder):
            raise ValueError(f"{output}: would be read as a timeline of {dataset}; write it elsewhere")
    if fmt == "parquet":
        data = _parquet_bytes(frame)
    elif fmt == "csv":
        data = frame.to_csv(index=False)
    elif fmt == "json":
        data = frame.to_json(orient="records", date_format="iso", double_precision=10) + "\n"
    else:
        data = table(frame) + "\n"
    if output is None or str(output) == "-":
        sys.stdout.write(data)
        sys.stdout.flush()
        return None
    path = Path(output)
    with atomic_path(path) as temp:
        temp.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue()
