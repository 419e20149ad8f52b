"""What a media file holds, read from `ffmpeg -i` (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from fer_video.errors import InputError
from fer_video.video.ffmpeg_binary import ffmpeg_exe, ffmpeg_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}

# NTSC rates print rounded ("29.97 fps"); encoding at the rounded value would drift from the audio.
_NTSC = {"23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "59.94": Fraction(60000, 1001)}


@dataclass(frozen=True)
class MediaInfo:
    path: str
    width: int  # upright, after rotation metadata is applied
    height: int
    fps: Fraction  # average rate; per-frame timestamps come from the stream itself
    duration: float | None
    rotation: int  # degrees the stored picture is turned to display upright
    video_codec: str
    audio_codec: str | None
    is_image: bool = False
    container: str = ""  # ffmpeg's demuxer names, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "matroska,webm"
    frame_count: int | None = None  # frames the container's own index lists (MP4/MOV sample table)
    video_start: float = 0.0  # seconds from the file's start to the video stream's (after the audio's)
    video_end: float | None = None  # seconds from the file's start to the video's end, where the stream says
    pixel_format: str = ""  # as decoded, e.g. "yuv420p", "yuvj420p" (full range), "yuv420p10le"
    full_range: bool = False  # its colours use the full 0-255 range ("pc"), as many phones record

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def expected_frames(self) -> int | None:
        """The container's frame count where it keeps one, else an estimate from the video's
        duration and the nominal rate (too high for variable frame rates)."""
        if self.frame_count:
            return self.frame_count
        end = self.video_end if self.video_end is not None else self.duration
        return round(max(end - self.video_start, 0) * float(self.fps)) if end else None

    @property
    def is_matroska(self) -> bool:
        return "matroska" in self.container.split(",") or "webm" in self.container.split(",")


def _fps(stream_line: str) -> Fraction:
    for unit in ("fps", "tbr"):
        m = re.search(rf"([\d.]+)(k?) {unit}\b", stream_line)
        if m:
            text, kilo = m.group(1), m.group(2)
            value = _NTSC.get(text) or Fraction(text).limit_denominator(1001)
            return value * 1000 if kilo else value
    return Fraction(25)


def probe(path: str | Path) -> MediaInfo:
    """Probe a video or still image; raises InputError with ffmpeg's reason when it cannot."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, not a video or image")
    _check_regular(path)
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ffmpeg_path(path)],
        capture_output=True, text=True, errors="replace", timeout=60,
    )
    text = result.stderr
    video = _video_stream(text)
    if "moov atom not found" in text and _starts_like_mp4(path):
        raise InputError(path, "truncated or unfinished MP4 (moov atom not found)")
    if video is None:
        if re.search(r"Stream #\d+:\d+[^:]*: Audio: ", text):
            cover = "(attached pic)" in text
            raise InputError(path, "no video stream (audio with cover art only)" if cover else "no video stream (audio only)")
        reason = _ffmpeg_reason(text) or "no video stream"
        raise InputError(path, f"not a readable video or image ({reason})")
    codec, rest = video.group(1), video.group(2)
    width, height = _frame_size(path, rest)
    after_video = text[video.end():]
    next_stream = after_video.find("Stream #")
    rot = re.search(r"rotation of (-?[\d.]+) degrees", after_video[: None if next_stream < 0 else next_stream])
    # ffmpeg reports the counter-clockwise angle; what matters here is whether sides swap.
    rotation = round(float(rot.group(1))) % 360 if rot else 0
    if rotation in (90, 270):
        width, height = height, width
    audio = re.search(r"Stream #\d+:\d+[^:]*: Audio: (\w+)", text)
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None
    container = re.search(r"Input #0, ([\w,]+), from", text)
    container = container.group(1) if container else ""
    # Decoded timestamps count from the file's start (the earliest stream's); the video's own
    # start and end are said relative to it.
    file_start = re.search(r"Duration: [^,]+, start: (-?[\d.]+)", text)
    file_start = float(file_start.group(1)) if file_start else 0.0
    own_start = re.search(r", start (-?[\d.]+)", rest)
    video_start = max(float(own_start.group(1)) - file_start, 0.0) if own_start else 0.0
    video_block = after_video[: None if next_stream < 0 else next_stream]
    tag = re.search(r"^\s+DURATION\s*: (\d+):(\d+):([\d.]+)", video_block, re.MULTILINE)
    video_end = int(tag.group(1)) * 3600 + int(tag.group(2)) * 60 + float(tag.group(3)) if tag else None
    frame_count = None
    if "mov" in container.split(",") and not path.suffix.lower() in IMAGE_SUFFIXES:
        from fer_video.video.mp4 import video_frame_count

        frame_count = video_frame_count(path)
    is_image = path.suffix.lower() in IMAGE_SUFFIXES or "_pipe, from" in text or codec in ("png", "bmp", "webp")
    if is_image:
        width, height = _upright_image_size(path, width, height)
    return MediaInfo(
        path=str(path), width=width, height=height, fps=_fps(rest), duration=duration,
        rotation=rotation, video_codec=codec, audio_codec=audio.group(1) if audio else None,
        is_image=is_image, container=container, frame_count=frame_count, video_start=video_start,
        video_end=video_end, **_pixel_format(rest),
    )


MIN_SIDE = 10  # pixels: smaller frames cannot hold a face worth finding


def _video_stream(text: str) -> re.Match | None:
    """The first real video stream `ffmpeg -i` lists: a cover picture (an MP3's or M4A's
    artwork, "(attached pic)") is not one."""
    for match in re.finditer(r"Stream #\d+:\d+[^:]*: Video: (\w+)(.*)", text):
        if "(attached pic)" not in match.group(2):
            return match
    return None


def _pixel_format(stream: str) -> dict:
    """The pixel format and range from the stream line: "..., yuvj420p(pc, bt709), 1280x720, ..."."""
    m = re.search(r", ([a-z][a-z0-9_]*)(?:\(([^)]*)\))?, \d{1,5}x\d{1,5}", stream)
    if m is None:
        return {}
    details = [d.strip() for d in (m.group(2) or "").split(",")]
    return {"pixel_format": m.group(1), "full_range": m.group(1).startswith("yuvj") or "pc" in details}


def _frame_size(path: Path, stream: str) -> tuple[int, int]:
    size = re.search(r", (\d{1,5})x(\d{1,5})", stream)
    if size is None:
        raise InputError(path, "video stream has no frame size")
    width, height = int(size.group(1)), int(size.group(2))
    if min(width, height) < MIN_SIDE:
        raise InputError(path, f"{width}x{height} pixels: too small to hold a face (under {MIN_SIDE} px)")
    return width, height


def _check_regular(path: Path) -> None:
    """A named pipe or a device is no file to probe, decode and decode again (nor is it empty)."""
    import stat

    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        raise InputError(path, "a named pipe (FIFO), not a file")
    if not stat.S_ISREG(mode):
        raise InputError(path, "not a regular file")


def _upright_image_size(path: Path, width: int, height: int) -> tuple[int, int]:
    """ffmpeg gives a photo's stored size; OpenCV decodes it turned upright by its EXIF
    orientation, and that is the picture the boxes are in."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return (image.shape[1], image.shape[0]) if image is not None else (width, height)


def _starts_like_mp4(path: Path) -> bool:
    """An MP4 opens with an `ftyp` box: a text file named .mp4 also makes ffmpeg say
    "moov atom not found", but it is not a truncated MP4."""
    with open(path, "rb") as f:
        return f.read(12)[4:8] == b"ftyp"


def _ffmpeg_reason(stderr: str) -> str:
    """ffmpeg's own last complaint, shortened to one line. Indented lines describe streams and
    their metadata, and the headers, progress line and closing byte counts are no complaint."""
    for raw in reversed(stderr.rstrip().splitlines()):
        if raw[:1].isspace() or raw.startswith(("Input #", "Output #", "Stream mapping", "Press [q]")):
            continue
        line = re.sub(r"^\[[^\]]+\]\s*", "", raw.strip())
        if line.startswith("Error opening input:"):
            return line.split(":", 1)[1].strip().rstrip(".")
        if re.match(r"(frame|size)=\s*\S", line) or "speed=" in line or re.match(r"video:\s*\S+\s+audio:", line):
            continue  # the progress line or the closing byte counts, not a reason
        if line and not line.startswith(("At least one output", "Exiting", "Error opening input")):
            return line.rstrip(".")
    return ""
