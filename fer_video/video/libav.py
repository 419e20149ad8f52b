"""Decoding in this process, with PyAV (FFmpeg's own libraries), where it gives what the ffmpeg
binary's pipe gives: the frames, their numbers and their timestamps, byte for byte.

The ffmpeg process behind `read_frames` costs more than its decoding: its filter graph, and every
frame written into a pipe and read out of it (the kernel allocating, copying and freeing 1.4 MB a
720p frame). Here the decoder writes into its frame and one copy makes the array: on the 30 s
720p clip 0.9 s of CPU against 2.5-3 s for the process and both ends of its pipe
(docs/benchmarks.md, 2026-12-07 22:03). PyAV lets go of the GIL while it decodes.

Only a video the binary would pass through untouched is read here: a whole video (no segment,
which seeks) in an MP4/MOV or Matroska/WebM file, not rotated, limited-range 8-bit 4:2:0 of even
size, the I420 layout `read_frames` gives. Everything else, and every video where PyAV is not
installed, goes through the binary.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from fer_video.resources import codec_threads
from fer_video.video.planes import i420_planes


@functools.cache
def available() -> bool:
    """Whether PyAV is installed: looked up, not imported (0.1 s), so the caller's thread does
    not wait for it; the decoding thread imports it."""
    return importlib.util.find_spec("av") is not None


def handles(info, first: int, last: int | None) -> bool:
    """Whether `info`'s frames `first` to `last` are read here (see the module's docstring)."""
    return (first == 0 and last is None and not info.is_image and info.rotation == 0
            and info.pixel_format == "yuv420p" and not info.full_range
            and info.width % 2 == 0 and info.height % 2 == 0 and _steady_clock(info) and available())


def _steady_clock(info) -> bool:
    """MP4/MOV and Matroska/WebM: containers whose timestamps ffmpeg moves by the file's start
    alone. For formats with timestamp discontinuities (MPEG-TS and PS, FLV) it also corrects the
    start by the streams it uses, which is left to it."""
    return "mov" in info.container.split(",") or info.is_matroska


def time_string_value(seconds: float) -> float:
    """`seconds` as FFmpeg prints a timestamp (showinfo's pts_time: six decimals from 1 s up, six
    significant digits below) and read back: the times the binary's pipe gives."""
    if seconds == 0 or not math.isfinite(seconds):
        return float(seconds)
    exponent = math.floor(math.log10(abs(seconds)))
    precision = -exponent + 5 if exponent < 0 else 6
    return float(f"{seconds:.{precision}f}")


def decode(path: str, width: int, height: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame number, seconds, I420 array) of every frame of the first video stream, with the
    number and time the binary's pipe gives each. Raises `DecodeFailed` where the file cannot be
    opened; a packet that does not decode is skipped, as the binary skips it, and a read error
    ends the stream there (what the caller counts as a short video)."""
    import av

    try:
        container = av.open(path)
    except av.FFmpegError as error:
        raise DecodeFailed(str(error)) from error
    try:
        if not container.streams.video:
            raise DecodeFailed("no video stream")
        stream = container.streams.video[0]
        threads = codec_threads()
        stream.codec_context.thread_count = threads
        if threads > 1:
            stream.codec_context.thread_type = "AUTO"
        base = stream.time_base or Fraction(1, 90000)
        # The binary moves every timestamp by the file's start (a first frame after it keeps
        # the difference), rounded to the stream's time base.
        start = container.start_time or 0
        shift = -_nearest(Fraction(start, 1_000_000) / base) if start else 0
        unit = float(base)  # FFmpeg's av_q2d: num / (double) den
        number = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError:
                break  # a cut file: what was read is what there is
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                pts = frame.pts if frame.pts is not None else frame.dts
                seconds = time_string_value((pts + shift) * unit) if pts is not None else math.nan
                if frame.format.name != "yuv420p" or frame.width != width or frame.height != height:
                    frame = frame.reformat(width=width, height=height, format="yuv420p")
                yield number, seconds, _i420(frame, width, height)
                number += 1
    finally:
        container.close()


def _i420(frame, width: int, height: int) -> np.ndarray:
    """The frame's planes copied, without their row padding, into one I420 array of its own."""
    out = np.empty((height * 3 // 2, width), np.uint8)
    for plane, part in zip(frame.planes, i420_planes(out, width, height)):
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        part[:] = rows[: part.shape[0], : part.shape[1]]
    return out


def _nearest(x: Fraction) -> int:
    """`x` rounded half away from zero, as av_rescale_q rounds."""
    whole = math.floor(abs(x) + Fraction(1, 2))
    return whole if x >= 0 else -whole


class DecodeFailed(Exception):
    """PyAV could not open or read the video at all."""
