"""The emotion timeline: its Parquet schema, writing it, and reading it back."""

from fer_video.timeline.schema import COLUMNS, SCHEMA, TimelineMetadata

__all__ = ["COLUMNS", "SCHEMA", "TimelineMetadata"]
