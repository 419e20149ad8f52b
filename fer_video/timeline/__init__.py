"""The emotion timeline: its Parquet schema, writing it, and reading it back."""

from fer_video.timeline.read import load, load_metadata
from fer_video.timeline.schema import COLUMNS, SCHEMA, TimelineMetadata

__all__ = ["COLUMNS", "SCHEMA", "TimelineMetadata", "load", "load_metadata"]
