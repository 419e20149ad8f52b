"""The CSV sink: the timeline's rows as `<name>.csv`, for tools that do not read Parquet
(`--format csv`). It goes in a `feed`'s sinks before the ParquetSink, which closes last:

    sinks = [CsvSink(out_dir / f"{name}.csv", meta.video_id, meta.source_path), ParquetSink(path, meta)]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_video.faces.record import Faces, timeline_columns
from fer_video.sinks import Sink

if TYPE_CHECKING:
    import pandas as pd

FLUSH_ROWS = 4096  # faces held before they are written: memory stays bounded, pandas is called per batch, not per frame


class CsvSink(Sink):
    """The Parquet timeline's columns, in its order: video_id, source_path, then
    `timeline_columns` (a `data` column too), one row per face; numbers as pandas writes them (every
    digit a float needs to be read back the same), a missing person name empty. Rows are written as
    they come, a few thousand at a time, to a temp file renamed into place by `close`; fed no
    faces, the file is the header of the fixed columns."""

    needs_pixels = False

    def __init__(self, path: str | Path, video_id: str, source_path: str):
        self.path = Path(path)
        self.video_id, self.source_path = video_id, str(source_path)
        self._file = _AtomicFile(self.path)
        self._out = None
        self._parts: list[Faces] = []
        self._held = 0

    def append(self, faces: Faces, frame=None) -> None:
        if not len(faces):
            return
        self._parts.append(faces)
        self._held += len(faces)
        if self._held >= FLUSH_ROWS:
            self._flush()

    def close(self) -> Path:
        try:
            self._flush(always=self._out is None)  # the header at least
            out, self._out = self._out, None
            out.close()
        except BaseException:
            self.discard()
            raise
        return self._file.finish()

    def discard(self) -> None:
        self._parts, self._held = [], 0
        out, self._out = self._out, None
        if out is not None:
            out.close()
        self._file.abandon()

    def _flush(self, always: bool = False) -> None:
        import pandas as pd

        if not self._parts and not always:
            return
        faces = Faces.concat(self._parts) if self._parts else Faces.empty()
        self._parts, self._held = [], 0
        n = len(faces)
        rows = pd.DataFrame({"video_id": np.full(n, self.video_id, object),
                             "source_path": np.full(n, self.source_path, object),
                             **timeline_columns(faces)})
        header = self._out is None
        if header:
            # Held open across appends, closed by `close` or `discard`.
            self._out = open(self._file.temp(), "w", newline="", encoding="utf-8")  # noqa: SIM115
        rows.to_csv(self._out, header=header, index=False)


class _AtomicFile:
    """`fer_video.outputs.atomic_path` for a file written over many calls: its temp file is made at
    the first `temp()`, renamed into place by `finish`, removed by `abandon` (Ctrl-C removes it too)."""

    def __init__(self, path: Path):
        self.path = path
        self._atomic = None
        self._temp: Path | None = None

    def temp(self) -> Path:
        if self._atomic is None:
            from fer_video.outputs import atomic_path  # here: fer_video.outputs imports fer_video.video

            self._atomic = atomic_path(self.path)
            self._temp = self._atomic.__enter__()
        return self._temp

    def finish(self) -> Path:
        self.temp()
        atomic, self._atomic = self._atomic, None
        atomic.__exit__(None, None, None)
        return self.path

    def abandon(self) -> None:
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return
        failed = RuntimeError("discarded")
        try:
            atomic.__exit__(RuntimeError, failed, None)  # removes the temp file
        except RuntimeError as error:
            if error is not failed:
                raise
