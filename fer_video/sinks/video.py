"""The annotated video and image sinks: each decoded frame with the faces shown on it drawn
(`fer_video.draw`), written as an H.264 MP4 with the source's audio, or as an image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_video.draw import draw_faces, draw_faces_i420
from fer_video.faces.record import Faces
from fer_video.persons.labels import PersonLabels
from fer_video.sinks import Sink


class VideoSink(Sink):
    """`<name>.mp4` (or `<name>.annotated.mp4`): every frame appended, faces drawn on those that
    have any; a frame without faces goes out untouched, in the layout it was decoded in. The
    writer opens at the first frame, whose time is where the video starts on the source's clock.

    `faces`: the whole video's, for the person labels (a person may span several tracks, which
    only the whole video shows), computed once before any frame is drawn."""

    needs_pixels = True

    def __init__(self, info, path: str | Path, options, faces: Faces, draw_in_place: bool = False):
        """`draw_in_place`: draw on each appended frame's own pixels (where they are writable) rather
        than a copy, for a caller that hands each frame to this sink alone and uses it no more."""
        from fer_video.video.read import frame_layout

        self.info, self.path, self.preset = info, Path(path), options.preset
        self.labels = PersonLabels(faces)
        self.pix_fmt, _ = frame_layout(info.width, info.height)
        self.draw_in_place = draw_in_place
        self._writer = None

    def append(self, faces: Faces, frame=None) -> None:
        if self._writer is None:
            from fer_video.video import VideoWriter

            info = self.info
            self._writer = VideoWriter(self.path, info.width, info.height, info.fps,
                                       audio_from=info.path if info.has_audio else None, audio_codec=info.audio_codec,
                                       preset=self.preset, pix_fmt=self.pix_fmt, start=frame.time)
        if not len(faces):
            self._writer.write(frame.pixels)  # untouched, in the layout it was decoded in
            return
        # Frames go out in the layout they came in; an I420 frame is drawn on where its faces are.
        if frame.is_i420:
            in_place = self.draw_in_place and frame.pixels.flags.writeable
            self._writer.write(draw_faces_i420(frame.pixels, faces, self.labels(faces), in_place=in_place))
        else:
            self._writer.write(draw_faces(frame.image.copy(), faces, self.labels(faces)))

    def close(self) -> Path:
        if self._writer is None:
            raise RuntimeError(f"{self.path}: no frame was decoded to write")
        writer, self._writer = self._writer, None
        return writer.close()  # removes its temp file itself if ffmpeg failed

    def discard(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()


class ImageSink(Sink):
    """`<name>.annotated.<ext>`: the first frame appended, its faces drawn, encoded in the format
    its suffix names (PNG where OpenCV writes no such format)."""

    needs_pixels = True

    def __init__(self, path: str | Path, faces: Faces):
        self.path = Path(path)
        self.labels = PersonLabels(faces)
        self._image: np.ndarray | None = None

    def append(self, faces: Faces, frame=None) -> None:
        if self._image is not None:
            return  # an image has one frame
        image = frame.image.copy()
        if len(faces):
            draw_faces(image, faces, self.labels(faces))
        self._image = image

    def close(self) -> Path:
        from fer_video.outputs import IMAGE_WRITERS, atomic_path

        if self._image is None:
            raise RuntimeError(f"{self.path}: no image was decoded to write")
        image, self._image = self._image, None
        ok, data = cv2.imencode(self.path.suffix if self.path.suffix.lower() in IMAGE_WRITERS else ".png", image)
        if not ok:
            raise RuntimeError(f"{self.path}: could not encode the annotated image")
        with atomic_path(self.path) as temp:
            temp.write_bytes(data.tobytes())
        return self.path

    def discard(self) -> None:
        self._image = None  # nothing is on disk before `close`


def media_sink(info, path: str | Path, options, faces: Faces) -> Sink:
    """The annotated image's sink for an image, the annotated video's for a video."""
    return ImageSink(path, faces) if info.is_image else VideoSink(info, path, options, faces)
