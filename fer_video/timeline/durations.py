"""How long each analysed frame shows: the time from its timestamp to the next analysed frame's.

Time on screen, the seconds of each emotion and the `frame_duration_s` of `query` all add these
up, so they follow the frames' own display times (their pts) and stay exact at a variable frame
rate, where frames x stride / fps is not: a clip at 12.5 frames/s for a while and 30 elsewhere
has no one frame step.

A timeline holds rows only for frames with faces, so the rows alone cannot say when the next
analysed frame comes after the last frame of a stretch with faces. The writer knows every
analysed frame's time and records those ends in the metadata (`frame_ends`: [frame_index,
seconds] for each frame with faces whose next analysed frame has none, and for the video's last
analysed frame, which lasts until the video's end). A timeline written before that has no
`frame_ends`; its frames count stride / fps each, as they did then.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fer_video.timeline.schema import TimelineMetadata

if TYPE_CHECKING:
    import pandas as pd


def frame_ends(face_frames, frame_times: pd.Series | None, end: float | None) -> list[list[float]] | None:
    """The `frame_ends` metadata for a video: `face_frames`, the frame indices with rows;
    `frame_times`, every analysed frame's timestamp by frame index; `end`, when the video's last
    frame stops showing (None when not known: its last analysed frame then lasts the median
    step between analysed frames). None when the frame times are not known."""
    if frame_times is None:
        return None
    times = frame_times.sort_index()
    index, seconds = times.index.to_numpy(np.int64), times.to_numpy(np.float64)
    faces = np.unique(np.asarray(face_frames, np.int64))
    if not len(index) or not len(faces):
        return []
    if end is None and len(seconds) > 1:
        end = float(seconds[-1] + np.median(np.diff(seconds)))
    position = np.searchsorted(index, faces)
    known = (position < len(index)) & (index[np.minimum(position, len(index) - 1)] == faces)
    frames, k = faces[known], position[known]
    inside = k + 1 < len(index)
    # The next analysed frame has no row to tell its time: this frame's row carries it.
    after = np.minimum(k + 1, len(index) - 1)
    silent = inside & ~np.isin(index[after], faces)
    ends = {int(f): float(seconds[j]) for f, j in zip(frames[silent], after[silent])}
    if end is not None and len(frames) and not inside[-1] and end > seconds[k[-1]]:
        ends[int(frames[-1])] = float(end)  # the video's last analysed frame
    return [[f, ends[f]] for f in sorted(ends)]


def nominal_step(metadata: TimelineMetadata | None) -> float:
    """stride / fps, from the file's metadata (NaN when unknown): what a frame counted in a
    timeline without `frame_ends`, and the `videos` view's `frame_step_s`."""
    if metadata is None or not metadata.fps or not math.isfinite(metadata.fps) or metadata.fps <= 0:
        return float("nan")
    return metadata.stride / metadata.fps


def frame_durations(frame: pd.DataFrame, metadata: dict[str, TimelineMetadata]) -> pd.Series:
    """Seconds each row's frame shows (aligned with `frame`'s index), from its own and the next
    analysed frame's timestamps. `frame` must hold all rows of its videos (filter after this:
    a frame's next one may be another track's or outside a time window)."""
    import pandas as pd

    out = pd.Series(np.nan, index=frame.index, dtype=np.float64)
    if not len(frame):
        return out
    for video, rows in frame.groupby("video_id", sort=False):
        meta = metadata.get(video)
        ends = getattr(meta, "frame_ends", None)
        if ends is None:  # written before frame ends were kept: the nominal step, as then
            out[rows.index] = nominal_step(meta)
            continue
        frames = rows.drop_duplicates("frame_index").sort_values("frame_index")
        index = frames["frame_index"].to_numpy(np.int64)
        start = frames["timestamp_s"].to_numpy(np.float64)
        stop = np.append(start[1:], np.nan)  # the next frame with faces is the next analysed one ...
        recorded = dict((int(i), float(t)) for i, t in ends)
        stop = np.array([recorded.get(int(i), s) for i, s in zip(index, stop)])  # ... unless recorded
        # An end not recorded (a hand-made file, or an image's one frame): the nominal step.
        duration = pd.Series(stop - start, index=index).fillna(nominal_step(meta))
        out[rows.index] = duration.reindex(rows["frame_index"].to_numpy()).to_numpy()
    return out
