"""Streaming upright BGR frames with their stream timestamps from an ffmpeg pipe.

One frame at a time is read, whatever the video's length. ffmpeg applies rotation metadata
(so phone videos come out upright) and, with `-fps_mode passthrough`, emits each decoded frame
once, so variable-frame-rate videos keep their true timestamps: the `showinfo` filter prints each
frame's pts_time on stderr, which a reader thread collects. A whole video that ffmpeg would pass
through untouched is decoded in this process instead (`fer_video.video.libav`, PyAV): the same
frames, numbers and timestamps, without the process and its pipe.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from fer_video.errors import InputError
from fer_video.faces.detectors.geometry import shrink
from fer_video.resources import codec_threads, run_behind
from fer_video.video import libav
from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path
from fer_video.video.index import FrameIndex, frame_index
from fer_video.video.pipes import enlarge_pipe
from fer_video.video.planes import i420_planes
from fer_video.video.probe import MediaInfo, _ffmpeg_reason

log = logging.getLogger("fer_video.video")

_PTS = re.compile(rb"\] n:\s*(\d+) pts:\s*-?\d+\s+pts_time:(-?[\d.e+-]+)")


# The shot-cut test's thumbnail reads every 4th row of a large frame: a quarter of the bytes
# (0.16 ms against 0.27 of CPU a 720p frame, on one thread), and the histograms it compares move
# by at most 0.04 (Bhattacharyya) on the bench's and the tests' clips, against 0.13 within a
# shot and 0.61 across a cut, the threshold 0.5 (docs/benchmarks.md, 2026-12-07).
THUMBNAIL_ROW_STEP = 4


@dataclass
class Frame:
    index: int  # position among all decoded frames, strided or not
    time: float  # seconds, from the stream's own timestamps
    pixels: np.ndarray  # upright, as decoded: I420 planes (H*3/2 x W) for even sizes, else H x W x 3 BGR

    @property
    def is_i420(self) -> bool:
        return self.pixels.ndim == 2

    @cached_property
    def image(self) -> np.ndarray:
        """H x W x 3 uint8 BGR."""
        return cv2.cvtColor(self.pixels, cv2.COLOR_YUV2BGR_I420) if self.is_i420 else self.pixels

    def thumbnail(self, width: int, height: int, row_step: int = THUMBNAIL_ROW_STEP) -> np.ndarray:
        """The frame area-averaged down to `width` x `height` (even) BGR, from every `row_step`-th
        row of it where it has rows to spare (the shot-cut test's picture). From I420 each plane
        is shrunk before the colours are converted: half the bytes of shrinking the BGR frame,
        and `image` is not needed."""
        if not self.is_i420:
            return shrink(self.pixels, width, height)
        y, u, v = i420_planes(self.pixels, self.pixels.shape[1], self.pixels.shape[0] * 2 // 3)
        step = max(1, min(row_step, y.shape[0] // height))
        small = np.empty((height * 3 // 2, width), np.uint8)
        sy, su, sv = i420_planes(small, width, height)
        sy[:], su[:], sv[:] = shrink(y[::step], width, height), shrink(u[::step], width // 2, height // 2), \
            shrink(v[::step], width // 2, height // 2)
        return cv2.cvtColor(small, cv2.COLOR_YUV2BGR_I420)


@dataclass
class DecodeStats:
    decoded: int = 0  # frames of the video up to where decoding stopped, strided-out ones included
    skipped: int = 0  # of those, frames before a segment's seek point, which ffmpeg never decoded
    expected: int | None = None  # frames the container says the video has (estimated where it keeps no count)
    short: str = ""  # why the video ended before the container says it should, when it did
    end: float | None = None  # seconds at which the last decoded frame stops showing, when decoding reached the end

    @property
    def work(self) -> int:
        """Frames ffmpeg actually decoded."""
        return self.decoded - self.skipped


class _Misaligned(Exception):
    """A seek did not land where the frame index said; raised before any frame is yielded."""


@dataclass(frozen=True)
class _Seek:
    at: float  # seconds for -ss (before the keyframe to start decoding from)
    gate: float  # seconds between frame `first - 1` and frame `first`
    skipped: int  # frames before the seek point
    index: FrameIndex


SEEK_ATTEMPTS = 2  # keyframes tried, latest first, before decoding from the start
TIME_TOLERANCE_S = 5e-4  # a frame's pts_time and its index time agree within this (pts_time prints in us)


def read_frames(
    info: MediaInfo, stride: int = 1, stats: DecodeStats | None = None, first: int = 0, last: int | None = None
) -> Iterator[Frame]:
    """Every `stride`-th frame of the video (or the one frame of an image), optionally only
    frames `first` to `last` (inclusive, by index among all frames) for a segment.

    A segment starts decoding at the keyframe before `first`, found with a demux-only frame
    index (fer_video.video.index), and yields the frames, indices and timestamps a single pass
    would. Where no exact index can be had (see that module), or the seek does not land on
    frame `first`, it decodes from the start and drops the frames before `first`.

    Raises InputError if ffmpeg fails or the video ends far short of its stated duration
    (a truncated file), after yielding what it could decode. `stats`, if given, receives the
    number of frames decoded once the stream ends.
    """
    stats = stats if stats is not None else DecodeStats()
    if info.is_image:
        yield Frame(0, 0.0, read_image(info.path))
        stats.decoded = 1
        return
    stride = max(1, int(stride))
    first = max(0, int(first))
    if libav.handles(info, first, last):
        yield from _decode_in_process(info, stride, stats)
        return
    if first > 0:
        index = frame_index(info.path)
        points = index.seek_points(first)[:SEEK_ATTEMPTS] if index is not None else []
        for at, skipped in points:
            try:
                yield from _decode(info, stride, stats, first, last, _Seek(at, index.gate(first), skipped, index))
                return
            except _Misaligned as e:
                log.info("%s: seeking to %.3f s for frame %d: %s", info.path, at, first, e)
        if points:
            log.warning("%s: frame %d decoded from the start: seeking did not land on it", info.path, first)
    yield from _decode(info, stride, stats, first, last, None)


def frame_shape(pix_fmt: str, width: int, height: int) -> tuple[int, ...]:
    """The array shape of one raw frame: I420 planes stacked (yuv420p), or H x W x 3 (bgr24)."""
    return {"yuv420p": (height * 3 // 2, width), "bgr24": (height, width, 3)}[pix_fmt]


def frame_layout(width: int, height: int) -> tuple[str, tuple[int, ...]]:
    """ffmpeg pixel format and array shape of a decoded frame. Even-sized video comes as I420,
    the decoder's own layout: half the bytes of BGR through the pipe, no conversion in ffmpeg,
    and OpenCV converts it in a tenth of a millisecond when BGR is wanted (measured at 720p)."""
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "bgr24"
    return pix_fmt, frame_shape(pix_fmt, width, height)


def _decode(info: MediaInfo, stride: int, stats: DecodeStats, first: int, last: int | None,
            seek: _Seek | None) -> Iterator[Frame]:
    pix_fmt, shape = frame_layout(info.width, info.height)
    output: dict = {"format": "rawvideo", "pix_fmt": pix_fmt, "fps_mode": "passthrough"}
    if last is not None:
        output["frames:v"] = (last - first) // stride + 1  # ffmpeg stops after the segment's last frame
    if seek is not None:
        # -copyts -start_at_zero: timestamps as a single pass has them (the file's start time
        # subtracted), not restarted at the seek point. The select drops what lies between the
        # keyframe and frame `first`, so showinfo numbers frames from `first`.
        stream = (ffmpeg.input(ffmpeg_path(info.path), ss=f"{seek.at:.6f}", threads=codec_threads()).video
                  .filter("select", f"gte(t,{seek.gate:.6f})").filter("showinfo", checksum=0))
        if stride > 1:
            stream = stream.filter("select", f"not(mod(n,{stride}))")
        global_args = ["-copyts", "-start_at_zero"]
        base = first
    else:
        # showinfo sits before select, so it numbers every decoded frame and the timestamps of
        # the frames that select keeps can be looked up by their index. A segment that could not
        # seek decodes the frames before `first` and drops them.
        stream = ffmpeg.input(ffmpeg_path(info.path), threads=codec_threads()).video.filter("showinfo", checksum=0)
        if first or last is not None:
            upper = "" if last is None else f"*lte(n,{last})"
            stream = stream.filter("select", f"gte(n,{first}){upper}*not(mod(n-{first},{stride}))")
        elif stride > 1:
            stream = stream.filter("select", f"not(mod(n,{stride}))")
        global_args = []
        base = 0
    if pix_fmt == "yuv420p" and (info.pixel_format != "yuv420p" or info.full_range):
        # Full-range sources (many phones) to the limited range that OpenCV's conversion and the
        # encoder assume. Limited-range 8-bit 4:2:0, the usual video, comes as it is: the filter
        # would give the same bytes for 0.2 s of the decoder's CPU in 30 s of 720p.
        stream = stream.filter("scale", out_range="tv")
    args = (
        stream.output("pipe:", **output)
        .global_args("-hide_banner", "-nostdin", "-loglevel", "info", *global_args)
        .compile(cmd=ffmpeg_exe())
    )
    frame_bytes = int(np.prod(shape))
    # Unbuffered: each frame is read straight into an array of its own, which the caller may
    # draw on (a buffered read would copy it once more, into a read-only bytes).
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    enlarge_pipe(proc.stdout, frame_bytes)
    run_behind(proc.pid)
    timestamps: queue.Queue[tuple[int, float] | None] = queue.Queue()
    other_lines: list[bytes] = []
    drain = threading.Thread(target=_collect_stderr, args=(proc.stderr, timestamps, other_lines), daemon=True)
    drain.start()
    pending: dict[int, float] = {}
    times: list[float] = []  # of every decoded frame: where the video really ends, and its frame spacing
    seen = base  # frames of the video up to the last one ffmpeg reported, strided-out ones included
    finished = False
    warned = False
    try:
        emitted = 0
        while True:
            pixels = np.empty(shape, np.uint8)
            if not _read_into(proc.stdout, pixels):
                break
            index = first + emitted * stride
            emitted += 1
            while index not in pending:
                item = timestamps.get(timeout=60)
                if item is None:
                    raise InputError(info.path, "ffmpeg gave a frame without a timestamp")
                pending[base + item[0]] = item[1]
                times.append(item[1])
                seen = max(seen, base + item[0] + 1)
            time = pending.pop(index)
            for stale in [k for k in pending if k < index]:
                del pending[stale]
            if seek is not None and not warned and not _agrees(seek.index, index, time):
                if emitted == 1:
                    raise _Misaligned(f"the first frame decoded is at {time:.6f} s, frame {first} at "
                                      f"{seek.index.times[first]:.6f} s")
                log.warning("%s: frame %d is at %.6f s, the frame index says otherwise: indices after it may "
                            "differ from a single pass", info.path, index, time)
                warned = True
            yield Frame(index, time, pixels)
        if seek is not None and emitted == 0:
            raise _Misaligned("no frame decoded after the seek point")
        finished = True
    finally:
        if not finished:
            proc.kill()  # the consumer stopped early or failed: don't wait for the whole video
        proc.stdout.close()
        proc.wait()
        drain.join(timeout=10)
    while (item := timestamps.get()) is not None:
        times.append(item[1])
        seen = max(seen, base + item[0] + 1)
    stats.decoded = seen
    stats.skipped = seek.skipped if seek is not None else 0
    if seek is not None and last is None and seen != len(seek.index) and proc.returncode == 0 and not warned:
        log.warning("%s: %d frames decoded to the end, the frame index lists %d: indices may differ from a "
                    "single pass", info.path, seen, len(seek.index))
    _check_complete(info, proc.returncode, seen, b"\n".join(other_lines), last, times, stats)
    if last is None and times:
        stats.end = video_end(info, times)


def _decode_in_process(info: MediaInfo, stride: int, stats: DecodeStats) -> Iterator[Frame]:
    """`read_frames` of a whole video by PyAV (`fer_video.video.libav`): the same frames, numbers
    and times as the binary's pipe, checked for completeness the same way."""
    times: list[float] = []
    seen, returncode, complaint = 0, 0, ""
    try:
        for number, time, pixels in libav.decode(ffmpeg_path(info.path), info.width, info.height):
            times.append(time)
            seen = number + 1
            if number % stride == 0:
                yield Frame(number, time, pixels)
    except libav.DecodeFailed as error:
        returncode, complaint = 1, str(error)
    stats.decoded, stats.skipped = seen, 0
    _check_complete(info, returncode, seen, complaint.encode(), None, times, stats)
    if times:
        stats.end = video_end(info, times)


def _read_into(pipe, array: np.ndarray) -> bool:
    """Fill `array` from the unbuffered `pipe`; False at the end of the stream (a partial frame
    at the end is dropped, as ffmpeg never writes one unless it was cut short)."""
    view, got = memoryview(array).cast("B"), 0
    while got < len(view):
        n = pipe.readinto(view[got:])
        if not n:
            return False
        got += n
    return True


def video_end(info: MediaInfo, times: list[float]) -> float:
    """When the last of these decoded frames (a whole video's) stops showing: where the stream
    says it ends (Matroska's DURATION tag) if that lies within two frame steps after it, else one
    step after it. The step is the median spacing of the last few frames (the rate where the
    video ends, which at a variable rate may be far from the average), or the nominal rate's
    where the two agree to the microsecond the timestamps are printed in, so that a constant
    rate ends exactly where frames / fps says."""
    ordered = np.sort(np.asarray(times, np.float64))[-10:]
    last = float(ordered[-1])
    nominal = 1 / float(info.fps) if info.fps else math.nan
    step = float(np.median(np.diff(ordered))) if len(ordered) > 1 else nominal
    if not math.isfinite(step) or step <= 0:
        step = nominal if math.isfinite(nominal) and nominal > 0 else 0.0
    elif math.isfinite(nominal) and abs(step - nominal) <= 2e-6:
        step = nominal
    if info.video_end is not None and last < info.video_end <= last + 2 * step:
        return float(info.video_end)
    return last + step


def _agrees(index: FrameIndex, position: int, time: float) -> bool:
    return position < len(index) and abs(index.times[position] - time) <= TIME_TOLERANCE_S


def _collect_stderr(pipe, timestamps: queue.Queue, other_lines: list[bytes]) -> None:
    """ffmpeg's log lines: each frame's timestamp into `timestamps`, the last complaints into
    `other_lines`. Read in whatever chunks the pipe holds and split here: iterating the buffered
    pipe by line cost 5x the CPU (0.19 s against 0.04 s for 900 frames' lines)."""
    fd, rest = pipe.fileno(), b""
    while True:
        data = os.read(fd, 65536)
        if data:
            lines = (rest + data).split(b"\n")
            rest = lines.pop()  # a line still being written waits for its end
        else:
            lines, rest = [rest] if rest else [], b""
        for line in lines:
            m = _PTS.search(line)
            if m:
                timestamps.put((int(m.group(1)), float(m.group(2))))
            elif b"Parsed_showinfo" not in line:
                other_lines.append(line.rstrip())
                del other_lines[:-50]  # only the last complaints are reported
        if not data:
            break
    timestamps.put(None)


SHORT_ERROR = 0.9  # a video that ends before this share of its frames is refused; later, a warning


def _check_complete(info: MediaInfo, returncode: int, decoded: int, stderr: bytes, last: int | None,
                    times: list[float], stats: DecodeStats) -> None:
    """Raise InputError if decoding failed or the video ends far short of what its container
    says; note a smaller shortfall in `stats.short` (the caller warns and keeps the frames).

    What the container says: the MP4/MOV sample table's frame count, exact; for Matroska/WebM,
    which keep no count, where the video stream ends (its DURATION tag), against where the last
    decoded frame ends; for other containers, duration x nominal rate, only good enough to
    catch a file cut far short (variable frame rates and audio longer than the video make it
    too high), so only that is checked."""
    text = stderr.decode("utf-8", "replace")
    if returncode != 0:
        raise InputError(info.path, f"ffmpeg could not decode it ({_ffmpeg_reason(text) or f'exit {returncode}'})")
    if decoded == 0:
        raise InputError(info.path, f"no decodable video frames ({_ffmpeg_reason(text) or 'empty stream'})")
    warn = True  # the evidence is good enough to warn about a few missing frames
    refuse = True  # ... and to refuse a file far short
    if last is not None:  # a segment before the end: only whether it got its frames
        expected, warn = min(info.expected_frames or last + 1, last + 1), False
    elif info.frame_count:
        expected = info.frame_count
    elif info.is_matroska and times and (info.video_end or info.duration):
        # The stream's own end (DURATION tag) is firm; the file's duration may be the audio's.
        refuse = info.video_end is not None
        end = info.video_end if info.video_end is not None else info.duration
        ordered = np.sort(np.asarray(times))
        gap = float(np.median(np.diff(ordered))) if len(ordered) > 1 else 1 / float(info.fps)
        missing = (end - (ordered[-1] + gap)) / gap if gap > 0 else 0.0
        expected = decoded + round(missing) if missing > 1.5 else decoded
    else:
        expected, warn = info.expected_frames, False
    stats.expected = expected
    if not expected or decoded >= expected:
        return
    reason = "partial file" if "partial file" in text else _ffmpeg_reason(text)
    if refuse and decoded < SHORT_ERROR * expected - 1:
        raise InputError(
            info.path, f"truncated or corrupt: decoded {decoded} of about {expected} frames"
            + (f" ({reason})" if reason else "")
        )
    if warn:
        about = "" if info.frame_count else "about "
        stats.short = (f"ends early (truncated, or still being written): decoded {decoded} of {about}{expected} "
                       f"frames; the timeline covers those")


def read_image(path: str | Path) -> np.ndarray:
    """A still image as upright BGR (OpenCV applies the EXIF orientation)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(path, "not a readable image")
    return image
