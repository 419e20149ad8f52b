"""Stage 4: the annotated video (or image), drawn from the smoothed rows. It decodes the source
a second time rather than keeping frames from the analysis, so memory does not grow with the
video and the labels drawn can be smoothed ones (which need the future)."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from fer_video import interrupt
from fer_video.draw import draw_faces
from fer_video.jobs import AnnotateOptions
from fer_video.outputs import IMAGE_WRITERS, atomic_path, outputs_of
from fer_video.persons.labels import person_labels
from fer_video.timeline.rows import faces_by_frame, values_by_frame
from fer_video.video import MediaInfo, VideoWriter, read_frames
from fer_video.video.prefetch import prefetch
from fer_video.video.read import frame_layout


def render(info: MediaInfo, rows: pd.DataFrame, options: AnnotateOptions, name: str | None = None,
           path: Path | None = None) -> Path:
    """The annotated video (or image): every source frame, with the faces of the latest analysed
    frame within the stride drawn on it. `path`: where, if not where `outputs_of` puts it."""
    path = path or outputs_of(info, options.out_dir, name, options.inputs_root).media
    by_frame = faces_by_frame(rows)
    labels = person_labels(rows)
    persons = values_by_frame(rows, labels) if labels is not None else {}
    if info.is_image:
        image = next(iter(read_frames(info))).image.copy()
        if 0 in by_frame:
            draw_faces(image, by_frame[0], persons.get(0))
        return _write_image(image, path)
    total = info.expected_frames
    bar = tqdm(total=total, unit="frame", desc=f"render {Path(info.path).name}",
               disable=not options.progress, leave=False, dynamic_ncols=True)
    pix_fmt, _ = frame_layout(info.width, info.height)

    def decoded():  # run a few frames ahead in a thread by `prefetch`
        for frame in read_frames(info):
            if frame.index - frame.index % options.stride in by_frame:
                _ = frame.image  # converted to BGR there, where faces will be drawn (it is cached)
            yield frame

    frames = prefetch(decoded)
    try:
        # The bar is entered first, so that an error opening the writer clears it before its line.
        with bar:
            first = next(frames)  # its time is where the video starts on the source's clock
            writer = VideoWriter(path, info.width, info.height, info.fps,
                                 audio_from=info.path if info.has_audio else None, audio_codec=info.audio_codec,
                                 preset=options.preset, pix_fmt=pix_fmt, start=first.time)
            with writer:
                for frame in itertools.chain([first], frames):
                    interrupt.check()
                    faces = by_frame.get(frame.index - frame.index % options.stride)
                    if faces is None:
                        writer.write(frame.pixels)  # untouched, in the layout it was decoded in
                    else:
                        # OpenCV draws in BGR; frames go out in the layout they came in.
                        image = frame.image.copy() if not frame.is_i420 else frame.image  # a fresh array when converted
                        draw_faces(image, faces, persons.get(frame.index - frame.index % options.stride))
                        writer.write(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420) if frame.is_i420 else image)
                    bar.update(1)
    finally:
        frames.close()  # ends the decoder at once if drawing or writing failed
    return path


def _write_image(image: np.ndarray, path: Path) -> Path:
    ok, data = cv2.imencode(path.suffix if path.suffix.lower() in IMAGE_WRITERS else ".png", image)
    if not ok:
        raise RuntimeError(f"{path}: could not encode the annotated image")
    with atomic_path(path) as temp:
        temp.write_bytes(data.tobytes())
    return path


def redraw(timeline: Path, preset: str = "ultrafast", progress: bool = False) -> Path | None:
    """The annotated video or image beside `timeline` drawn again from its rows, in place: after
    `fer-video link` gave its faces folder-wide persons or names, the media must show what the
    timeline says. None when there is no media to redraw (a `--no-video` run)."""
    from fer_video.errors import InputError
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
        return render(info, pd.read_parquet(timeline), options, meta.video_id, path=media[0])
