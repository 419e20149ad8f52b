"""Sinks: where a video's faces go, one frame at a time, and `feed`, which runs them. Modelled on
supervision's `CSVSink` and `JSONSink`.

A sink is an object with

    needs_pixels   class attribute: whether `append` needs the decoded frame (a sink that draws)
    append(faces: Faces, frame=None)
                   the faces of one frame, possibly none, in frame order; `frame`, the decoded
                   `fer_video.video.Frame`, for a sink that needs pixels
    close() -> Path
                   the file finished and renamed into place (`fer_video.outputs.atomic_path`)
    discard()      the file given up: no partial file is left

and is a context manager: leaving the `with` normally closes it, by an exception discards it.

    timeline.py  ParquetSink: the timeline, written last (its job key marks a finished job)
    video.py     VideoSink and ImageSink: the annotated MP4 and the annotated still image

A sink opens its file at its first `append` (or at `close`), never when it is made: a sink made
and then not fed leaves nothing behind.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from fer_video import interrupt
from fer_video.faces.record import Faces


class Sink:
    """The protocol's context manager; subclasses write `append`, `close` and `discard`."""

    needs_pixels: ClassVar[bool] = False

    def append(self, faces: Faces, frame=None) -> None:
        raise NotImplementedError

    def close(self) -> Path:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def by_frame(faces: Faces) -> dict[int, Faces]:
    """Each frame's faces, in frame order; within a frame, in the order `faces` has them. The
    order is taken once and each frame sliced from it, rather than each frame searched for."""
    frames = faces.frame_index
    order = np.argsort(frames, kind="stable")
    sorted_frames = frames[order]
    starts = np.flatnonzero(np.r_[True, sorted_frames[1:] != sorted_frames[:-1]]) if len(faces) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(faces)].astype(int)
    return {int(sorted_frames[a]): faces[order[a:b]] for a, b in zip(starts, ends)}


def feed(info, faces: Faces, sinks: list[Sink], options) -> list[Path]:
    """`faces` (a whole video's) into `sinks`, frame by frame, then each sink closed in list order
    (put the timeline last); the paths written, in that order.

    Only when a sink needs pixels is the source decoded, a second time, rather than frames kept
    from the analysis: memory does not grow with the video, and what is drawn can be smoothed
    (which needs the future). A sink that draws gets every decoded frame with the faces shown on
    it, those of the latest analysed frame within the stride (possibly none); a sink that does
    not gets each frame with faces once, in frame order, the source not decoded at all. On an
    error every sink not yet closed is discarded."""
    sinks = list(sinks)
    try:
        if any(sink.needs_pixels for sink in sinks):
            _decoded(info, faces, sinks, options)
        else:
            for frame_faces in by_frame(faces).values():
                interrupt.check()
                for sink in sinks:
                    sink.append(frame_faces)
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    paths = []
    for i, sink in enumerate(sinks):
        try:
            paths.append(sink.close())  # a sink that fails to close discards its own file
        except BaseException:
            for rest in sinks[i + 1:]:
                rest.discard()
            raise
    return paths


def _decoded(info, faces: Faces, sinks: list[Sink], options) -> None:
    from fer_video.video import libav, read_frames
    from fer_video.video.prefetch import prefetch

    frames_faces = by_frame(faces)
    pending = iter(frames_faces.items())  # for the sinks that do not draw, in frame order
    drawing = [s for s in sinks if s.needs_pixels]
    counting = [s for s in sinks if not s.needs_pixels]
    none = faces[0:0]  # no faces, the same columns
    stride = options.stride

    def decoded():  # run a few frames ahead in a thread by `prefetch`
        for frame in read_frames(info):
            if frame.index - frame.index % stride in frames_faces:
                _ = frame.image  # converted to BGR there, where faces will be drawn (it is cached)
            yield frame

    bar = tqdm(total=info.expected_frames, unit="frame", desc=f"render {Path(info.path).name}",
               disable=not options.progress or info.is_image, leave=False, dynamic_ncols=True)
    frames = prefetch(decoded, behind=libav.handles(info, 0, None))
    next_frame, next_faces = next(pending, (None, None))
    try:
        # The bar is entered first, so that an error opening a sink's file clears it before its line.
        with bar:
            for frame in frames:
                interrupt.check()
                shown = frames_faces.get(frame.index - frame.index % stride, none)
                for sink in drawing:
                    sink.append(shown, frame)
                while next_frame is not None and next_frame <= frame.index:
                    for sink in counting:
                        sink.append(next_faces)
                    next_frame, next_faces = next(pending, (None, None))
                bar.update(1)
        for frame_index, frame_faces in itertools.chain([(next_frame, next_faces)] if next_frame is not None else [],
                                                        pending):
            for sink in counting:  # faces of frames past the last one decoded this time
                sink.append(frame_faces)
    finally:
        frames.close()  # ends the decoder at once if drawing or writing failed
