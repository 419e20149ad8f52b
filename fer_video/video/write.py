"""Encoding BGR frames to a browser-playable H.264 MP4 with the source's audio, atomically."""

from __future__ import annotations

import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from fer_video.resources import codec_threads, run_behind
from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path
from fer_video.video.pipes import FramePipe, enlarge_pipe
from fer_video.video.probe import _ffmpeg_reason
from fer_video.video.read import frame_shape

# Codecs an MP4 carries that browsers play: copied as they are; anything else becomes AAC.
_MP4_AUDIO = {"aac", "mp3"}


class VideoWriter:
    """`with VideoWriter(out, w, h, fps, audio_from=src) as w: w.write(frame)`, frames BGR (H x W x 3)
    or, with `pix_fmt="yuv420p"`, I420 planes (H*3/2 x W) as `read_frames` gives them. A frame
    must not change once written: ffmpeg reads it in place, later (`fer_video.video.pipes.FramePipe`).

    Frames go to a hidden temp file of this writer's own (`fer_video.outputs.atomic_path`), renamed
    to `out` only after ffmpeg finished cleanly, so a crash never leaves a file that looks complete. yuv420p needs even sides: an odd-sized source is
    padded by one pixel.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: Fraction,
        audio_from: str | None = None,
        audio_codec: str | None = None,
        preset: str = "veryfast",
        crf: int = 23,
        pix_fmt: str = "bgr24",
        start: float = 0.0,
    ):
        """`start`: seconds of the first frame on the source's clock (as `read_frames` gives it).
        A video that starts after its audio keeps that offset, so picture and sound stay in sync
        and the MP4's clock is the timeline's; it lands on the frame grid, within a frame."""
        from fer_video.outputs import atomic_path  # here: fer_video.outputs imports fer_video.video

        self.path = Path(path)
        self._atomic = atomic_path(self.path)  # entered here, left by close (rename) or abort (removal)
        self.partial = self._atomic.__enter__()
        self.width, self.height = width, height
        self.shape = frame_shape(pix_fmt, width, height)
        offset = {"itsoffset": f"{start:.6f}"} if start > 0 else {}
        video = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt=pix_fmt, s=f"{width}x{height}", framerate=str(fps), **offset
        ).video
        if width % 2 or height % 2:
            video = video.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        streams = [video]
        options: dict = dict(vcodec="libx264", preset=preset, crf=crf, pix_fmt="yuv420p", movflags="+faststart",
                             threads=codec_threads())
        if audio_from:
            streams.append(ffmpeg.input(ffmpeg_path(audio_from)).audio)
            options["acodec"] = "copy" if audio_codec in _MP4_AUDIO else "aac"
        args = (
            ffmpeg.output(*streams, ffmpeg_path(self.partial), format="mp4", **options)
            .global_args("-hide_banner", "-nostdin", "-loglevel", "error", "-y")
            .compile(cmd=ffmpeg_exe())
        )
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        run_behind(self._proc.pid)
        frame_bytes = int(np.prod(self.shape))
        enlarge_pipe(self._proc.stdin, frame_bytes)
        self._frames = FramePipe(self._proc.stdin, frame_bytes)
        self._stderr: list[bytes] = []
        self._drain = threading.Thread(target=lambda: self._stderr.extend(self._proc.stderr), daemon=True)
        self._drain.start()

    def write(self, image: np.ndarray) -> None:
        if image.shape != self.shape:
            raise ValueError(f"frame of shape {image.shape}, expected {self.shape}")
        try:
            self._frames.write(image)
        except BrokenPipeError:
            self._fail("ffmpeg stopped taking frames")

    def close(self) -> Path:
        self._frames.close(self._proc)  # waits for ffmpeg: it reads the last frames from our memory
        self._drain.join(timeout=10)
        if self._proc.returncode != 0:
            self._fail(f"ffmpeg exit {self._proc.returncode}")
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        failed = RuntimeError("aborted")
        try:
            self._atomic.__exit__(RuntimeError, failed, None)  # removes the temp file
        except RuntimeError as error:
            if error is not failed:
                raise

    def _fail(self, fallback: str):
        self.abort()
        reason = _ffmpeg_reason(b"".join(self._stderr).decode("utf-8", "replace")) or fallback
        raise RuntimeError(f"{self.path}: encoding failed ({reason})")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
