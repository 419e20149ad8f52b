"""Video in and out through the ffmpeg binary: probe, stream frames, encode H.264 with audio."""

from fer_video.video.probe import MediaInfo, probe
from fer_video.video.read import DecodeStats, Frame, read_frames
from fer_video.video.write import VideoWriter

__all__ = ["DecodeStats", "Frame", "MediaInfo", "VideoWriter", "probe", "read_frames"]
