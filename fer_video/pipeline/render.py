"""Stage 4: the annotated video (or image). The video the analysis drew as it went
(`fer_video.pipeline.live`) is kept when it drew what the whole video's faces draw; otherwise
the video sink (`fer_video.sinks.video`) is fed by `fer_video.sinks.feed`, which decodes the
source a second time and draws each frame's faces."""

from __future__ import annotations

from pathlib import Path

from fer_video.faces.record import Faces
from fer_video.jobs import AnnotateOptions
from fer_video.outputs import outputs_of
from fer_video.persons.labels import PersonLabels
from fer_video.sinks import feed
from fer_video.sinks.video import media_sink
from fer_video.video import MediaInfo


def render(info: MediaInfo, faces: Faces, options: AnnotateOptions, name: str | None = None,
           path: Path | None = None, live=None) -> Path:
    """The annotated video (or image): every source frame, with the faces of the latest analysed
    frame within the stride drawn on it. `faces`: the whole video's, smoothed. `path`: where, if
    not where `outputs_of` puts it. `live`: the video the analysis drew as it went
    (`fer_video.pipeline.live`), kept when it drew what these faces draw, else given up and the
    video drawn again here."""
    if live is not None:
        try:
            kept = live.matches(faces, PersonLabels(faces)(faces))
        except BaseException:
            live.discard()
            raise
        if kept:
            return live.close()
        live.discard()
    path = path or outputs_of(info, options.out_dir, name, options.inputs_root).media
    return feed(info, faces, [media_sink(info, path, options, faces)], options)[0]


def redraw(timeline: Path, preset: str = "ultrafast", progress: bool = False) -> Path | None:
    """The annotated video or image beside `timeline` drawn again from its rows, in place: after
    `fer-video link` gave its faces folder-wide persons or names, the media must show what the
    timeline says. None when there is no media to redraw (a `--no-video` run)."""
    import pandas as pd

    from fer_video.errors import InputError
    from fer_video.faces.record import from_timeline_columns
    from fer_video.outputs import claim, media_names, timeline_metadata
    from fer_video.video import probe

    out_dir = timeline.parent
    meta = timeline_metadata(timeline)
    media = [out_dir / n for n in media_names(meta.video_id) if (out_dir / n).exists()] if meta else []
    if not media:
        return None
    info = probe(meta.source_path)  # InputError, naming the file, if the source is gone
    options = AnnotateOptions(out_dir=out_dir, stride=meta.stride, preset=preset, progress=progress)
    with claim(out_dir, meta.video_id) as mine:
        if not mine:
            raise InputError(str(media[0]), "busy: another fer-video run is writing it; `fer-video link` redraws it later")
        faces = from_timeline_columns(pd.read_parquet(timeline))
        return render(info, faces, options, meta.video_id, path=media[0])
