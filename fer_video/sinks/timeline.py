"""The timeline sink: a video's faces as its Parquet timeline, one row per (frame, face)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fer_video.expression.labels import EMOTIONS
from fer_video.faces.record import Faces, timeline_columns
from fer_video.sinks import Sink
from fer_video.timeline.schema import METADATA_KEY, TimelineMetadata, timeline_schema


class ParquetSink(Sink):
    """`<name>.parquet`: the faces appended, with `metadata` (its `video_id` and `source_path`
    fill those columns), written in one piece by `close`. The schema is `timeline_schema` of the
    faces: a `data` column is a column of the timeline. A timeline with its job key marks a
    finished job, so it is the last sink closed."""

    needs_pixels = False

    def __init__(self, path: str | Path, metadata: TimelineMetadata):
        self.path = Path(path)
        self.metadata = metadata
        self._parts: list[Faces] = []  # the small per-face columns only: no pixels are kept

    def append(self, faces: Faces, frame=None) -> None:
        if len(faces):
            self._parts.append(faces)

    def close(self) -> Path:
        from fer_video.timeline.write import write_table  # here: it imports fer_video.outputs

        table = faces_table(Faces.concat(self._parts), self.metadata)
        self._parts = []
        return write_table(table, self.path)

    def discard(self) -> None:
        self._parts = []  # nothing is on disk before `close`


def faces_table(faces: Faces, metadata: TimelineMetadata) -> pa.Table:
    """`faces` as a timeline table of `timeline_schema(faces)`, `metadata` in its schema: the
    table `fer_video.timeline.write.to_table` makes of the same rows, and a column per `data`
    column besides."""
    n = len(faces)
    schema = timeline_schema(faces)
    columns = {"video_id": np.full(n, metadata.video_id, object),
               "source_path": np.full(n, metadata.source_path, object),
               **timeline_columns(faces)}
    arrays = []
    for field in schema:
        if field.name == "label":  # every class in the dictionary, in EMOTIONS' order, as pandas' Categorical gives
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(faces.label_ids.astype(np.int8), pa.int8()),
                                                         pa.array(list(EMOTIONS), pa.string())))
        else:
            arrays.append(pa.array(columns[field.name], field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    return table.replace_schema_metadata({METADATA_KEY: metadata.to_bytes()})
