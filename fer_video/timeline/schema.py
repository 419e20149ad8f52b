"""The timeline's Parquet schema, one row per (frame, face), made from the `Faces` record.

Keep README.md's "Parquet schema" section in step with this file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from fer_video.expression.labels import EMOTIONS
from fer_video.faces.record import Faces, timeline_columns

RAW = [f"raw_{e}" for e in EMOTIONS]
SMOOTH = [f"p_{e}" for e in EMOTIONS]

# Per video: which input the rows are of. Every other column is a `Faces` field's
# (`fer_video.faces.record.timeline_columns`, the one place they are named and ordered).
VIDEO_FIELDS = [
    pa.field("video_id", pa.string(), nullable=False),  # the output name (fer_video.outputs.output_name)
    pa.field("source_path", pa.string(), nullable=False),
]


def arrow_field(name: str, values: np.ndarray) -> pa.Field:
    """The timeline field of one `Faces` column: `label` as a dictionary of the class names, text
    (object arrays: person names) nullable, numbers as their NumPy type, never null."""
    if name == "label":
        return pa.field(name, pa.dictionary(pa.int8(), pa.string()), nullable=False)
    if values.dtype == object:
        return pa.field(name, pa.string(), nullable=True)
    return pa.field(name, pa.from_numpy_dtype(values.dtype), nullable=False)


def timeline_schema(faces: Faces | None = None) -> pa.Schema:
    """The schema of `faces`' timeline: SCHEMA, then a field for each of its `data` columns."""
    columns = timeline_columns(faces if faces is not None else Faces.empty())
    return pa.schema(VIDEO_FIELDS + [arrow_field(name, values) for name, values in columns.items()])


SCHEMA = timeline_schema()
COLUMNS = SCHEMA.names
METADATA_KEY = b"fer_video"
# Columns added after timelines were first written: an older file lacks them and reads them as
# null (person_id then falls back to track_id), so their absence is not damage.
ADDED_LATER = ("person_id", "person")


def _label_type(kind: pa.DataType) -> bool:
    """Labels as plain text or a dictionary of text cast to SCHEMA's without loss."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def schema_problem(schema: pa.Schema, null_counts: dict[str, int] | None = None) -> str | None:
    """What keeps a file of this Arrow schema from being read as a timeline ("no column label",
    "x is string, not float", "label has nulls"), or None. `null_counts` (from the Parquet
    footer's statistics) finds nulls in columns that never hold any. The one check of a file
    against SCHEMA: every reader (load, summary, plot, query) goes through it."""
    missing = [f.name for f in SCHEMA if f.name not in schema.names and f.name not in ADDED_LATER]
    if missing:
        return f"no column {', '.join(missing)}"
    problems = []
    for field in SCHEMA:
        if field.name not in schema.names:
            continue
        kind = schema.field(field.name).type
        if kind != field.type and not (field.name == "label" and _label_type(kind)):
            problems.append(f"{field.name} is {kind}, not {field.type}")
        elif not field.nullable and (null_counts or {}).get(field.name):
            problems.append(f"{field.name} has nulls")
    return "; ".join(problems) or None


@dataclass
class TimelineMetadata:
    """Stored as JSON under the `fer_video` key of the Parquet file's metadata."""

    source_path: str
    width: int
    height: int
    fps: float
    duration_s: float | None
    frame_count: int  # frames decoded, analysed or not
    stride: int
    rotation: int
    has_audio: bool
    model_name: str
    model_version: str
    detector: str
    smoothing: str
    software_version: str
    content_sha256: str = ""  # of the source file
    job_key: str = ""  # content + model + settings: an equal key means the same result
    frames_expected: int | None = None  # what the container says; above frame_count for a file cut short
    video_id: str = ""  # the rows' video_id, so a renamed file still says whose it is ("" in older files)
    person_scope: str = "video"  # "folder" once `link` gave person_id folder-wide ids
    # [frame_index, seconds]: when the next analysed frame comes, for each frame with faces whose
    # next analysed frame has none, and the video's end for its last (timeline.durations); None
    # in timelines written before, whose frames count stride / fps each.
    frame_ends: list | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> "TimelineMetadata":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in json.loads(schema.metadata[METADATA_KEY]).items() if k in known})
