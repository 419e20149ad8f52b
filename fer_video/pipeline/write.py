"""Stage 5, last: the timeline, the timeline sink (`fer_video.sinks.timeline`) fed the video's
faces, with its metadata. A timeline with its job key is the mark of a finished job, so nothing
is written after it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fer_video import __version__
from fer_video.faces.record import Faces
from fer_video.jobs import AnnotateOptions, file_sha256, job_key
from fer_video.outputs import outputs_of
from fer_video.pipeline.analyse import Analysis
from fer_video.smoothing import Smoothing

if TYPE_CHECKING:
    from fer_video.timeline.schema import TimelineMetadata


def metadata(analysis: Analysis, options: AnnotateOptions, faces: Faces | None = None) -> TimelineMetadata:
    """The timeline's metadata; `faces`, the faces written (after tracks were dropped), fix which
    frames need their end recorded (`timeline.durations`)."""
    # pyarrow with them: loaded beside the analysis (`pipeline.annotate.import_later_stages`)
    from fer_video.timeline.durations import frame_ends
    from fer_video.timeline.schema import TimelineMetadata

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
        frame_ends=frame_ends((analysis.faces if faces is None else faces).frame_index,
                              analysis.frame_times, analysis.end_s),
    )


def write(faces: Faces, analysis: Analysis, options: AnnotateOptions) -> Path:
    """The timeline of `faces` (the whole video's, smoothed), and with --identity the embeddings
    before it. Sinks that do not draw go in the list before the ParquetSink, which closes last."""
    from fer_video.persons.store import write_embeddings
    from fer_video.sinks import feed
    from fer_video.sinks.csv import CsvSink
    from fer_video.sinks.timeline import ParquetSink

    path = outputs_of(analysis.info, options.out_dir, analysis.name).timeline
    if options.identity:  # before the timeline, whose presence marks the whole job done
        write_embeddings(analysis.embeddings, options.out_dir, analysis.name)
    meta = metadata(analysis, options, faces)
    sinks = [CsvSink(path.with_suffix(".csv"), meta.video_id, meta.source_path)] if options.format == "csv" else []
    sinks.append(ParquetSink(path, meta))
    return feed(analysis.info, faces, sinks, options)[-1]
