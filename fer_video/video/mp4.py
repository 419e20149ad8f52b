"""How many frames an MP4/MOV says its video track holds, read from its sample table.

`ffmpeg -i` prints a duration but not the count, and duration x frame rate is wrong for
variable frame rates and for video that starts after the audio. The sample table (`stsz`) is
written with the index, so a file cut short after its index (a `+faststart` MP4 whose data
ends early) still says how many frames it should have.
"""

from __future__ import annotations

import os
import struct


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes):
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


def _read_moov(path: str | os.PathLike) -> bytes | None:
    with open(path, "rb") as f:
        size_total = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + 8 <= size_total:
            f.seek(pos)
            head = f.read(16)
            size, kind = struct.unpack_from(">I4s", head)
            header = 8
            if size == 1 and len(head) >= 16:
                size, header = struct.unpack_from(">Q", head, 8)[0], 16
            elif size == 0:
                size = size_total - pos
            if size < header:
                return None
            if kind == b"moov":
                f.seek(pos + header)
                return f.read(min(size, size_total - pos) - header)
            pos += size
    return None


def _timescale_duration(data: bytes, start: int) -> tuple[int, int]:
    """(timescale, duration) of an `mvhd` or `mdhd` payload."""
    if data[start] == 1:
        return struct.unpack_from(">IQ", data, start + 20)
    return struct.unpack_from(">II", data, start + 12)


def video_frame_count(path: str | os.PathLike) -> int | None:
    """Samples in the first video track, or None where the sample table does not tell the frames
    a decoder shows: no index, a fragmented file (samples listed later, in `moof`s), or an edit
    list that leaves part of the track out (an edit trimmed without re-encoding)."""
    try:
        moov = _read_moov(path)
    except (OSError, struct.error):
        return None
    if not moov:
        return None
    try:
        top = list(_boxes(moov))
        if any(k == b"mvex" for k, _, _ in top):
            return None
        mvhd = next(((s, e) for k, s, e in top if k == b"mvhd"), None)
        movie_scale = _timescale_duration(moov, mvhd[0])[0] if mvhd else 0
        for kind, start, end in top:
            if kind != b"trak":
                continue
            mdia = _child(moov, start, end, b"mdia")
            hdlr = mdia and _child(moov, *mdia, b"hdlr")
            if not hdlr or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
                continue
            stbl = _child(moov, *_child(moov, *mdia, b"minf"), b"stbl")
            table = _child(moov, *stbl, b"stsz")
            if table:
                count = struct.unpack_from(">I", moov, table[0] + 8)[0]
            else:
                table = _child(moov, *stbl, b"stz2")
                if not table:
                    return None
                count = struct.unpack_from(">I", moov, table[0] + 8)[0]
            if count == 0:
                return None
            mdhd = _child(moov, *mdia, b"mdhd")
            if mdhd and movie_scale and _trimmed(moov, start, end, movie_scale,
                                                 *_timescale_duration(moov, mdhd[0]), count):
                return None
            return count
    except (struct.error, TypeError, IndexError):
        return None
    return None


def _trimmed(moov: bytes, start: int, end: int, movie_scale: int, media_scale: int, media_duration: int,
             count: int) -> bool:
    """Whether the track's edit list shows less than all of its media (by more than a frame)."""
    edts = _child(moov, start, end, b"edts")
    elst = edts and _child(moov, *edts, b"elst")
    if not elst or not media_scale or not media_duration:
        return False
    pos = elst[0]
    version, entries = moov[pos], struct.unpack_from(">I", moov, pos + 4)[0]
    pos += 8
    shown = 0.0
    for _ in range(entries):
        if version == 1:
            duration, media_time = struct.unpack_from(">Qq", moov, pos)
            pos += 20
        else:
            duration, media_time = struct.unpack_from(">Ii", moov, pos)
            pos += 12
        if media_time != -1:  # -1: an empty edit, a delay before the track starts
            shown += duration / movie_scale
    frame = media_duration / media_scale / count
    return shown < media_duration / media_scale - 1.5 * frame
