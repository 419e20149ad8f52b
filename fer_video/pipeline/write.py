"""Stage 5, last: the timeline's rows and metadata written to Parquet. A timeline with its job
key is the mark of a finished job, so nothing is written after it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_video import __version__
from fer_video.jobs import AnnotateOptions, file_sha256, job_key
from fer_video.outputs import outputs_of
from fer_video.persons.store import write_embeddings
from fer_video.pipeline.analyse import Analysis
from fer_video.smoothing import Smoothing
from fer_video.timeline.durations import frame_ends
from fer_video.timeline.schema import TimelineMetadata
from fer_video.timeline.write import write_timeline


def metadata(analysis: Analysis, options: AnnotateOptions, rows: pd.DataFrame | None = None) -> TimelineMetadata:
    """The timeline's metadata; `rows`, the rows written (after tracks were dropped), fix which
    frames need their end recorded (`timeline.durations`)."""
    info = analysis.info
    content_sha256 = analysis.content_sha256 or file_sha256(info.path)
    return TimelineMetadata(
        source_path=str(Path(info.path).resolve()), width=info.width, height=info.height,
        fps=float(info.fps), duration_s=info.duration, frame_count=analysis.frames_decoded,
        frames_expected=analysis.frames_expected,
        stride=options.stride, rotation=info.rotation, has_audio=info.has_audio,
        model_name=analysis.model_name, model_version=analysis.model_version,
        detector=analysis.detector, smoothing=str(Smoothing.parse(options.smoothing)),
        software_version=__version__,
        content_sha256=content_sha256,
        job_key=job_key(content_sha256, analysis.model_sha256, options),
        video_id=analysis.name,
        frame_ends=frame_ends((analysis.rows if rows is None else rows)["frame_index"], analysis.frame_times,
                              analysis.end_s),
    )


def write(rows: pd.DataFrame, analysis: Analysis, options: AnnotateOptions) -> Path:
    path = outputs_of(analysis.info, options.out_dir, analysis.name).timeline
    if options.identity:  # before the timeline, whose presence marks the whole job done
        write_embeddings(analysis.embeddings, options.out_dir, analysis.name)
    return write_timeline(rows, metadata(analysis, options, rows), path)
