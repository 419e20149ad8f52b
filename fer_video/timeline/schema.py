"""The one definition of the timeline's Parquet schema: one row per (frame, face).

Keep README.md's "Parquet schema" section in step with this file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pyarrow as pa

from fer_video.expression.labels import EMOTIONS

RAW = [f"raw_{e}" for e in EMOTIONS]
SMOOTH = [f"p_{e}" for e in EMOTIONS]

SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),  # the output name (fer_video.outputs.output_name)
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("frame_index", pa.int64(), nullable=False),  # among all decoded frames
        pa.field("timestamp_s", pa.float64(), nullable=False),  # from the stream's timestamps
        pa.field("track_id", pa.int32(), nullable=False),  # stable per face while in view
        # One person's tracks share it: within the video, or folder-wide after `fer-video link`.
        pa.field("person_id", pa.int32(), nullable=False),
        pa.field("person", pa.string(), nullable=True),  # a name from --people; null otherwise
        pa.field("x", pa.float32(), nullable=False),  # box in source pixels (upright frame)
        pa.field("y", pa.float32(), nullable=False),
        pa.field("w", pa.float32(), nullable=False),
        pa.field("h", pa.float32(), nullable=False),
        pa.field("det_score", pa.float32(), nullable=False),
        *[pa.field(name, pa.float32(), nullable=False) for name in RAW],  # calibrated, per frame
        *[pa.field(name, pa.float32(), nullable=False) for name in SMOOTH],  # smoothed over time
        pa.field("label", pa.dictionary(pa.int8(), pa.string()), nullable=False),  # argmax of p_*
        pa.field("confidence", pa.float32(), nullable=False),  # p_<label>
    ]
)
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
