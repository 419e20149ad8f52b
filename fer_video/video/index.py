"""Where each frame of a video lies in time, from a demux-only pass (no decoding), so that a
segment's decoder can seek near its first frame instead of decoding from the start.

`ffmpeg -c copy -f framecrc` lists every video packet with its pts and flags in about 1% of the
time a decode takes (0.2 s for 10 minutes of 720p). A decoder emits one frame per packet, in
pts order, so the k-th smallest pts is frame k of a single pass, at variable frame rates too.
That holds for the containers named in SEEKABLE with a clean packet list; anything else (a
demuxer whose timestamps ffmpeg rewrites when decoding, packets without pts or marked corrupt,
leading frames before the first keyframe, an unreadable tail) gets no index, and the caller
decodes from the start as before.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path

log = logging.getLogger("fer_video.video")

# Demuxers whose packet timestamps reach the decoder as listed (no discontinuity fixing) and
# whose packets are whole frames. MPEG-TS/PS, FLV and AVI are left to decode from the start.
SEEKABLE = {"mov", "mp4", "matroska", "webm"}

_AV_PKT_FLAG_KEY, _AV_PKT_FLAG_CORRUPT, _AV_PKT_FLAG_DISCARD = 0x1, 0x2, 0x4
MIN_GAP_S = 1e-3  # frames closer than this in time cannot be told apart by their printed pts_time


@dataclass(frozen=True)
class FrameIndex:
    times: np.ndarray  # seconds of frame k of a single pass, as its showinfo reports it (start time subtracted)
    keyframe: np.ndarray  # bool, frame k is a keyframe (a point the demuxer can seek to)

    def __len__(self) -> int:
        return len(self.times)

    def seek_points(self, first: int) -> list[tuple[float, int]]:
        """Where to seek, latest first, to decode frame `first` onwards: (seconds for `-ss`,
        frames before that point that are not decoded), one per keyframe at or before `first`
        but the very first one (seeking there gains nothing). Empty when `first` cannot be
        separated from the frame before it."""
        if not 0 < first < len(self.times) or self.times[first] - self.times[first - 1] < MIN_GAP_S:
            return []
        keys = np.flatnonzero(self.keyframe[: first + 1])
        points = []
        for k in keys[::-1]:
            # Half a frame before the keyframe: ffmpeg's trim at the seek point then keeps it.
            at = float(self.times[k - 1] + self.times[k]) / 2 if k else 0.0
            if at <= 0:
                break
            points.append((at, int(k)))
        return points

    def gate(self, first: int) -> float:
        """A time between frame `first - 1` and frame `first`."""
        return float(self.times[first - 1] + self.times[first]) / 2


_cache: OrderedDict[tuple, FrameIndex | str] = OrderedDict()
_locks: dict[tuple, threading.Lock] = {}
_cache_lock = threading.Lock()
CACHE_SIZE = 16


def frame_index(path: str | os.PathLike) -> FrameIndex | None:
    """The frame index of a video, or None (the reason logged) when the exact mapping from
    packets to decoded frames cannot be established. One pass per file per process: segments
    analysed on threads of one process share it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                found = _cache[key]
                return found if isinstance(found, FrameIndex) else None
        try:
            found = build_index(path)
        except IndexUnavailable as e:
            found = str(e)
            log.info("%s: segments decode from the start (%s)", path, found)
        with _cache_lock:
            _cache[key] = found
            while len(_cache) > CACHE_SIZE:
                old, _ = _cache.popitem(last=False)
                _locks.pop(old, None)
        return found if isinstance(found, FrameIndex) else None


class IndexUnavailable(Exception):
    pass


_INPUT = re.compile(r"Input #0, ([\w,]+), from")
_START = re.compile(r"Duration: [^,]+, start: (-?[\d.]+)")
_TB = re.compile(r"^#tb 0: (\d+)/(\d+)", re.MULTILINE)


def build_index(path: str | os.PathLike) -> FrameIndex:
    """The demux-only pass; raises IndexUnavailable saying why there is no exact index."""
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-copyts",
            "-i", ffmpeg_path(path), "-map", "0:v:0", "-c", "copy", "-copyinkf", "-copypriorss", "1",
            "-f", "framecrc", "-"]
    result = subprocess.run(args, check=False, capture_output=True, timeout=600)
    text = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        raise IndexUnavailable(f"listing packets failed (exit {result.returncode})")
    errors = [line for line in text.splitlines() if "[error]" in line or "[fatal]" in line]
    if errors:
        raise IndexUnavailable(f"listing packets reported: {errors[-1].split('] ', 2)[-1].strip()}")
    demuxer = _INPUT.search(text)
    if demuxer is None or not SEEKABLE & set(demuxer.group(1).split(",")):
        raise IndexUnavailable(f"container {demuxer.group(1) if demuxer else '?'} is not seeked exactly")
    start = _START.search(text)
    listing = result.stdout.decode("ascii", "replace")
    tb = _TB.search(listing)
    if tb is None:
        raise IndexUnavailable("no video time base")
    pts, flags = [], []
    for line in listing.splitlines():
        if not line.startswith("0,"):
            continue
        fields = [f.strip() for f in line.split(",")]
        flag = next((int(f[2:], 0) for f in fields[6:] if f.startswith("F=")), _AV_PKT_FLAG_KEY)
        if flag & _AV_PKT_FLAG_CORRUPT:
            raise IndexUnavailable("a packet is marked corrupt")
        try:
            pts.append(int(fields[2]))
        except ValueError:
            raise IndexUnavailable("a packet has no pts") from None
        flags.append(flag)
    if not pts:
        raise IndexUnavailable("no video packets")
    if not flags[0] & _AV_PKT_FLAG_KEY:
        raise IndexUnavailable("the stream does not open on a keyframe")
    pts_a, flags_a = np.array(pts, np.int64), np.array(flags)
    # Packets before an edit list's start are decoded but never output.
    shown = (flags_a & _AV_PKT_FLAG_DISCARD) == 0
    if (pts_a[shown] < pts_a[0]).any():
        # Leading pictures of an open GOP at the very start: decoders may drop them.
        raise IndexUnavailable("frames shown before the first keyframe")
    pts_a, key = pts_a[shown], (flags_a[shown] & _AV_PKT_FLAG_KEY).astype(bool)
    if not len(pts_a):
        raise IndexUnavailable("no video packets")
    order = np.argsort(pts_a, kind="stable")
    # A single pass subtracts the file's start time (printed in microseconds, as ffmpeg keeps it).
    start_s = float(start.group(1)) if start else 0.0
    times = pts_a[order] * float(Fraction(int(tb.group(1)), int(tb.group(2)))) - start_s
    return FrameIndex(times=times, keyframe=key[order])
