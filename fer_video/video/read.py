"""Streaming upright BGR frames with their stream timestamps from an ffmpeg pipe.

One frame is in memory at a time whatever the video's length. ffmpeg applies rotation metadata
(so phone videos come out upright) and, with `-fps_mode passthrough`, emits each decoded frame
once, so variable-frame-rate videos keep their true timestamps: the `showinfo` filter prints each
frame's pts_time on stderr, which a reader thread collects.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from fer_video.errors import InputError
from fer_video.video.ffmpeg_binary import ffmpeg_exe
from fer_video.video.probe import MediaInfo, _ffmpeg_reason

_PTS = re.compile(rb"\] n:\s*(\d+) pts:\s*-?\d+\s+pts_time:(-?[\d.e+-]+)")


@dataclass
class Frame:
    index: int  # position among all decoded frames, strided or not
    time: float  # seconds, from the stream's own timestamps
    image: np.ndarray  # H x W x 3 uint8, BGR, upright


@dataclass
class DecodeStats:
    decoded: int = 0  # frames ffmpeg decoded, strided-out ones included


def read_frames(
    info: MediaInfo, stride: int = 1, stats: DecodeStats | None = None, first: int = 0, last: int | None = None
) -> Iterator[Frame]:
    """Every `stride`-th frame of the video (or the one frame of an image), optionally only
    frames `first` to `last` (inclusive, by index among all frames) for a segment.

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
    # showinfo sits before select, so it numbers every decoded frame and the timestamps of the
    # frames that select keeps can be looked up by their index.
    stream = ffmpeg.input(info.path).video.filter("showinfo", checksum=0)
    output: dict = {"format": "rawvideo", "pix_fmt": "bgr24", "fps_mode": "passthrough"}
    if first or last is not None:
        # A segment: frames before `first` are decoded and dropped (decoding is cheap next to
        # analysis, and counting from the start keeps indices exact even at variable frame rates);
        # ffmpeg stops after the segment's last frame.
        upper = "" if last is None else f"*lte(n,{last})"
        stream = stream.filter("select", f"gte(n,{first}){upper}*not(mod(n-{first},{stride}))")
        if last is not None:
            output["frames:v"] = (last - first) // stride + 1
    elif stride > 1:
        stream = stream.filter("select", f"not(mod(n,{stride}))")
    args = (
        stream.output("pipe:", **output)
        .global_args("-hide_banner", "-nostdin", "-loglevel", "info")
        .compile(cmd=ffmpeg_exe())
    )
    frame_bytes = info.width * info.height * 3
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes)
    timestamps: queue.Queue[tuple[int, float] | None] = queue.Queue()
    other_lines: list[bytes] = []
    drain = threading.Thread(target=_collect_stderr, args=(proc.stderr, timestamps, other_lines), daemon=True)
    drain.start()
    pending: dict[int, float] = {}
    seen = 0  # frames ffmpeg has decoded so far, strided-out ones included
    finished = False
    try:
        emitted = 0
        while True:
            data = proc.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            index = first + emitted * stride
            emitted += 1
            while index not in pending:
                item = timestamps.get(timeout=60)
                if item is None:
                    raise InputError(info.path, "ffmpeg gave a frame without a timestamp")
                pending[item[0]] = item[1]
                seen = max(seen, item[0] + 1)
            time = pending.pop(index)
            for stale in [k for k in pending if k < index]:
                del pending[stale]
            yield Frame(index, time, np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3))
        finished = True
    finally:
        if not finished:
            proc.kill()  # the consumer stopped early or failed: don't wait for the whole video
        proc.stdout.close()
        proc.wait()
        drain.join(timeout=10)
    while (item := timestamps.get()) is not None:
        seen = max(seen, item[0] + 1)
    stats.decoded = seen
    expected = info.expected_frames if last is None else min(info.expected_frames or last + 1, last + 1)
    _check_complete(info, proc.returncode, seen, b"\n".join(other_lines), expected)


def _collect_stderr(pipe, timestamps: queue.Queue, other_lines: list[bytes]) -> None:
    for line in pipe:
        m = _PTS.search(line)
        if m:
            timestamps.put((int(m.group(1)), float(m.group(2))))
        elif b"Parsed_showinfo" not in line:
            other_lines.append(line.rstrip())
            del other_lines[:-50]  # only the last complaints are reported
    timestamps.put(None)


def _check_complete(info: MediaInfo, returncode: int, decoded: int, stderr: bytes, expected: int | None) -> None:
    text = stderr.decode("utf-8", "replace")
    if returncode != 0:
        raise InputError(info.path, f"ffmpeg could not decode it ({_ffmpeg_reason(text) or f'exit {returncode}'})")
    if decoded == 0:
        raise InputError(info.path, f"no decodable video frames ({_ffmpeg_reason(text) or 'empty stream'})")
    if expected and decoded < 0.9 * expected - 1:
        reason = "partial file" if "partial file" in text else _ffmpeg_reason(text)
        raise InputError(
            info.path, f"truncated or corrupt: decoded {decoded} of about {expected} frames ({reason})"
        )


def read_image(path: str | Path) -> np.ndarray:
    """A still image as upright BGR (OpenCV applies the EXIF orientation)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(path, "not a readable image")
    return image
