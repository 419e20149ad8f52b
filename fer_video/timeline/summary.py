"""Per track and per video summaries of timelines: what `fer-video summary` prints.

Definitions (every row of a timeline is one analysed frame of one face):

- frame duration: how long an analysed frame shows, from its own timestamp to the next analysed
  frame's (the video's end for its last; `timeline.durations`). The timestamps are the frames'
  display times from the stream (pts), so this holds at a variable frame rate too; at a
  constant rate it is stride / fps.
- frames: analysed frames the track is in (per video: analysed frames with at least one face).
- time_on_screen_s: the durations of those frames added up. Exact to the frame: a face seen in
  frames 10 to 39 of a 25 fps video is on screen from 0.4 s to 1.6 s, 1.2 s, and a track that
  leaves and comes back counts only the frames it was seen in. (Per video: time with at least
  one face on screen.) Timelines written before frame ends were recorded count stride / fps a
  frame.
- first_s, last_s: timestamp_s of the first and last frame the track is in.
- share_<emotion>: the fraction of the track's time on screen whose smoothed label is that
  emotion (they add up to 1). Per video: of all face time, each face counting once per frame.
- dominant: the emotion with the largest share; a tie (within 0.1 ms) goes to the larger summed
  p_<emotion>.
- changes: how often the smoothed label differs from the one of the track's previous analysed
  frame (per video: added up over its tracks).
- peak_<emotion>_s, peak_<emotion>_p: the strongest moment of each emotion, the timestamp_s and
  value of the highest p_<emotion> in the track (the first such frame on a tie). Per video also
  peak_<emotion>_track, the track it belongs to.
- by person (`by="person"`): the same figures over all of a person's tracks. When every timeline
  has folder-wide person ids (`fer-video link`), one row per person over all videos, with
  videos, tracks and peak_<emotion>_video; otherwise person ids are a video's own, and there is
  one row per (video, person). `person` is the name from --people, else `person_<id>`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fer_video.expression.labels import EMOTIONS
from fer_video.timeline.durations import frame_durations, nominal_step
from fer_video.timeline.schema import TimelineMetadata

SHARE = [f"share_{e}" for e in EMOTIONS]
PEAK_S = [f"peak_{e}_s" for e in EMOTIONS]
PEAK_P = [f"peak_{e}_p" for e in EMOTIONS]


DURATION = "frame_duration_s"
TIE_S = 1e-4  # emotions' times closer than this are a tie: timestamps are printed to the microsecond


def frame_step(metadata: TimelineMetadata | None) -> float:
    """Seconds of video one analysed frame stands for at the nominal rate: stride / fps (NaN when
    unknown). Time on screen comes from the frames' own timestamps (`timeline.durations`)."""
    return nominal_step(metadata)


def with_durations(frame: pd.DataFrame, metadata: dict[str, TimelineMetadata]) -> pd.DataFrame:
    """`frame` with a `frame_duration_s` column (`timeline.durations`); `frame` must hold all rows
    of its videos."""
    return frame.assign(**{DURATION: frame_durations(frame, metadata)})


def summary(path_or_folder: str | Path, by: str = "track", video=None, track=None,
            start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """Load a file or folder (filters as in `load`) and summarise it per track or per video."""
    from fer_video.timeline.read import load, load_metadata, require_tracks, warn_if_range_empty

    metadata = load_metadata(path_or_folder)
    frame = load(path_or_folder, video=video, track=track, start=start, end=end)
    if track is not None or start is not None or end is not None:
        # A frame lasts until the next analysed frame of its video, whichever track that shows
        # and whether or not it is in the window: durations come from all of the video's rows.
        every = with_durations(load(path_or_folder, video=video,
                                    columns=["video_id", "frame_index", "timestamp_s"]), metadata)
        lookup = every.drop_duplicates(["video_id", "frame_index"]).set_index(["video_id", "frame_index"])[DURATION]
        keys = pd.MultiIndex.from_frame(frame[["video_id", "frame_index"]])
        frame = frame.assign(**{DURATION: lookup.reindex(keys).to_numpy()})
    if video is not None:
        wanted = {str(v) for v in ([video] if isinstance(video, str) else video)}
        unknown = wanted - set(metadata) - set(frame["video_id"].unique())
        if unknown:
            raise ValueError(f"no video {', '.join(repr(v) for v in sorted(unknown))} in {path_or_folder} "
                             f"(videos: {', '.join(sorted(metadata)) or 'none'})")
        metadata = {k: v for k, v in metadata.items() if k in wanted}
    require_tracks(path_or_folder, video, track)
    if not len(frame):
        warn_if_range_empty(path_or_folder, video, track, start, end)
    return summary_of(frame, metadata, by=by)


def summary_of(frame: pd.DataFrame, metadata: dict[str, TimelineMetadata] | None = None,
              by: str = "track") -> pd.DataFrame:
    """The summary of timeline rows (as `load` returns them), one row per (video, track) or,
    with by="video", per video. `metadata` (by video id, as `load_metadata` returns it) gives
    each video's frame step; videos in it without face rows still get a row per video."""
    if by not in ("track", "video", "person"):
        raise ValueError(f"by must be 'track', 'video' or 'person', not {by!r}")
    metadata = metadata or {}
    if DURATION not in frame:
        frame = with_durations(frame, metadata)
    if by == "person":
        return _by_person(frame, metadata)
    frame = frame.sort_values(["video_id", "track_id", "frame_index"], kind="stable").reset_index(drop=True)
    labels = frame["label"].astype(pd.CategoricalDtype(list(EMOTIONS)))
    keys = ["video_id", "track_id"] if by == "track" else ["video_id"]

    codes = labels.cat.codes.to_numpy()
    same_track = np.zeros(len(frame), bool)
    if len(frame):
        same_track[1:] = ((frame["video_id"].to_numpy()[1:] == frame["video_id"].to_numpy()[:-1])
                          & (frame["track_id"].to_numpy()[1:] == frame["track_id"].to_numpy()[:-1]))
    changed = np.zeros(len(frame), np.int64)
    changed[1:] = same_track[1:] & (codes[1:] != codes[:-1])

    work = frame[keys + ["frame_index", "timestamp_s", DURATION]].copy()
    work["changed"] = changed
    weight = _weights(work[DURATION])
    onehot = pd.get_dummies(labels).reindex(columns=list(EMOTIONS), fill_value=False).astype(np.int64)
    onehot = onehot.mul(weight, axis=0)
    onehot.columns = SHARE
    work["weight"] = weight
    work = pd.concat([work, onehot, frame[[f"p_{e}" for e in EMOTIONS]]], axis=1)
    groups = work.groupby(keys, sort=True)

    out = pd.DataFrame(index=groups.size().index)
    if by == "track":
        out["frames"] = groups.size()
        out["time_on_screen_s"] = groups[DURATION].sum(min_count=1)
    else:
        out["tracks"] = frame.groupby("video_id")["track_id"].nunique()
        out["frames"] = groups["frame_index"].nunique()
        # Time with at least one face: each frame once, however many faces it holds.
        once = work.drop_duplicates(["video_id", "frame_index"])
        out["time_on_screen_s"] = once.groupby("video_id")[DURATION].sum(min_count=1)
    out["time_on_screen_s"] = out["time_on_screen_s"].round(6)  # timestamps are to the microsecond
    out["first_s"] = groups["timestamp_s"].min()
    out["last_s"] = groups["timestamp_s"].max()
    counts = groups[SHARE].sum()
    sums = groups[[f"p_{e}" for e in EMOTIONS]].sum()
    out["dominant"] = _dominant(counts.to_numpy(), sums.to_numpy())
    out["changes"] = groups["changed"].sum()
    total = groups["weight"].sum()
    for name in SHARE:
        out[name] = counts[name] / total
    for e, ps, pp in zip(EMOTIONS, PEAK_S, PEAK_P):
        best = groups[f"p_{e}"].idxmax()
        out[ps] = frame.loc[best.to_numpy(), "timestamp_s"].to_numpy()
        out[pp] = frame.loc[best.to_numpy(), f"p_{e}"].to_numpy().astype(np.float64)
        if by == "video":
            out[f"peak_{e}_track"] = frame.loc[best.to_numpy(), "track_id"].to_numpy()
    out = out.reset_index()

    if by == "track":
        if "person_id" in frame:  # who the track is: a name, or person_<id>
            from fer_video.persons.labels import person_label

            first = frame.groupby(keys, sort=True)[[c for c in ("person_id", "person") if c in frame]].first()
            out["person"] = [person_label(p, n) for p, n in zip(first["person_id"],
                             first["person"] if "person" in first else [None] * len(first))]
        out["track_id"] = out["track_id"].astype(np.int32)
        out["frames"] = out["frames"].astype(np.int64)
        out["changes"] = out["changes"].astype(np.int64)
        return out
    # Per video: every video in the metadata, with or without faces, and its length.
    videos = sorted(set(out["video_id"]) | set(metadata))
    out = out.set_index("video_id").reindex(videos)
    out.index.name = "video_id"
    out.insert(0, "duration_s", [_duration(metadata.get(v)) for v in videos])
    for column in ("tracks", "frames", "changes"):
        out[column] = out[column].fillna(0).astype(np.int64)
    out["time_on_screen_s"] = out["time_on_screen_s"].fillna(0.0)
    for e in EMOTIONS:
        out[f"peak_{e}_track"] = out[f"peak_{e}_track"].astype("Int32")
    return out.reset_index()


def _by_person(frame: pd.DataFrame, metadata: dict[str, TimelineMetadata]) -> pd.DataFrame:
    from fer_video.persons.labels import person_label

    if "person_id" not in frame:
        frame = frame.assign(person_id=frame["track_id"])
    if "person" not in frame:
        frame = frame.assign(person=None)
    folder = bool(metadata) and all(getattr(m, "person_scope", "video") == "folder" for m in metadata.values())
    keys = ["person_id"] if folder else ["video_id", "person_id"]
    frame = frame.sort_values(["video_id", "track_id", "frame_index"], kind="stable").reset_index(drop=True)
    labels = frame["label"].astype(pd.CategoricalDtype(list(EMOTIONS)))
    codes = labels.cat.codes.to_numpy()
    video, track = frame["video_id"].to_numpy(), frame["track_id"].to_numpy()
    changed = np.zeros(len(frame), np.int64)
    if len(frame):
        changed[1:] = (video[1:] == video[:-1]) & (track[1:] == track[:-1]) & (codes[1:] != codes[:-1])
    work = frame[keys + ["timestamp_s"]].copy()
    work["step"] = frame[DURATION].to_numpy()
    work["weight"] = _weights(work["step"])
    work["changed"] = changed
    work["track_key"] = frame["video_id"].astype(str) + "/" + frame["track_id"].astype(str)
    work["video"] = frame["video_id"]
    work["name"] = frame["person"]
    onehot = pd.get_dummies(labels).reindex(columns=list(EMOTIONS), fill_value=False).astype(np.int64)
    onehot = onehot.mul(work["weight"].to_numpy(), axis=0)
    onehot.columns = SHARE
    work = pd.concat([work, onehot, frame[[f"p_{e}" for e in EMOTIONS]]], axis=1)
    groups = work.groupby(keys, sort=True)
    out = pd.DataFrame(index=groups.size().index)
    names = groups["name"].first()
    if folder:
        out["videos"] = groups["video"].nunique()
    out["tracks"] = groups["track_key"].nunique()
    out["frames"] = groups.size()
    out["time_on_screen_s"] = groups["step"].sum(min_count=1).round(6)
    if not folder:
        out["first_s"] = groups["timestamp_s"].min()
        out["last_s"] = groups["timestamp_s"].max()
    counts = groups[SHARE].sum()
    sums = groups[[f"p_{e}" for e in EMOTIONS]].sum()
    out["dominant"] = _dominant(counts.to_numpy(), sums.to_numpy())
    out["changes"] = groups["changed"].sum().astype(np.int64)
    total = groups["weight"].sum()
    for name in SHARE:
        out[name] = counts[name] / total
    for e, ps, pp in zip(EMOTIONS, PEAK_S, PEAK_P):
        best = groups[f"p_{e}"].idxmax().to_numpy()
        if folder:
            out[f"peak_{e}_video"] = frame.loc[best, "video_id"].to_numpy()
        out[ps] = frame.loc[best, "timestamp_s"].to_numpy()
        out[pp] = frame.loc[best, f"p_{e}"].to_numpy().astype(np.float64)
    out = out.reset_index()
    out.insert(len(keys), "person", [person_label(p, n) for p, n in zip(out["person_id"], names.to_numpy())])
    out["person_id"] = out["person_id"].astype(np.int32)
    return out


def _weights(durations: pd.Series) -> np.ndarray:
    """What each frame counts for in shares: its duration in whole microseconds, the timestamps'
    own precision (so that equal times give exactly equal shares); where no duration is known (no
    frame rate in the metadata) each frame counts the same, as one second."""
    values = durations.to_numpy(np.float64)
    return np.where(np.isfinite(values), np.round(values * 1e6), 1_000_000).astype(np.int64)


def _dominant(times: np.ndarray, sums: np.ndarray) -> list[str]:
    """Per row, the emotion with the most time (`times` in microseconds); among those within TIE_S
    of it (a tie: durations from microsecond timestamps differ in the last digit), the one with
    the larger summed p."""
    if not len(times):
        return []
    tied = times >= times.max(axis=1, keepdims=True) - TIE_S * 1e6
    return [EMOTIONS[i] for i in np.where(tied, sums, -np.inf).argmax(axis=1)]


def _duration(metadata: TimelineMetadata | None) -> float:
    if metadata is None:
        return float("nan")
    if metadata.duration_s:
        return float(metadata.duration_s)
    step = frame_step(metadata)
    return metadata.frame_count * step / metadata.stride if math.isfinite(step) else float("nan")


def format_summary(summary: pd.DataFrame) -> str:
    """Two aligned tables for a terminal: time, dominant emotion, changes and shares (%), then the
    strongest moment of each emotion as `seconds (p)`."""
    from fer_video.timeline.query import format_table

    keys = [k for k in ("video_id", "track_id", "person_id", "person") if k in summary]
    second_keys = [k for k in ("video_id", "track_id", "person_id") if k in summary] or keys
    first = summary[keys].copy()
    for column in ("duration_s", "videos", "tracks"):
        if column in summary:
            first[column.replace("_s", " s")] = summary[column]
    first["frames"] = summary["frames"]
    first["on screen s"] = summary["time_on_screen_s"]
    if "first_s" in summary:
        first["first s"] = summary["first_s"]
        first["last s"] = summary["last_s"]
    first["dominant"] = summary["dominant"]
    first["changes"] = summary["changes"]
    for e in EMOTIONS:
        first[e] = summary[f"share_{e}"].map(lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%")
    second = summary[second_keys].copy()
    for e in EMOTIONS:
        second[e] = [
            "" if pd.isna(s) else f"{s:.2f} s ({p:.2f})"
            for s, p in zip(summary[f"peak_{e}_s"], summary[f"peak_{e}_p"])
        ]
    emotions = tuple(EMOTIONS)
    return (f"{format_table(first, right=emotions)}\n\n"
            f"strongest moment of each emotion, seconds (smoothed p):\n{format_table(second, right=emotions)}")
