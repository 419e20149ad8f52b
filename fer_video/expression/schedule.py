"""When a tracked face is classified, and its probabilities in the frames between.

An expression changes over hundreds of milliseconds and the default smoothing averages half a
second, so classifying a track's face in every frame of a 30 fps video mostly repeats the last
answer. `ClassifySchedule` classifies a track's face when its track is new (a cut starts new
tracks), when `1 / rate` seconds have passed since its last classification, or sooner when its
crop has changed since then by more than `change` (mean absolute difference of the 48x48 grey
crops, 0-255): a turn, a hand, a fast change of expression. `fill_between` then gives each face
that was not classified the probabilities of its track's last classified face.

    schedule = ClassifySchedule(rate=15)
    due = schedule(faces, crops)          # (N,) bool: which of this frame's faces to classify
    ...
    faces = fill_between(all_faces)       # NaN probabilities filled from the last classified, per track
"""

from __future__ import annotations

import numpy as np

from fer_video.faces.record import Faces

# Mean absolute difference, in grey levels, between a face's crop and the one last classified
# that counts as a change worth classifying at once. Frame-to-frame crops of a steady face
# differ by the detector box's jitter and the video's noise, a few levels.
CHANGE = 12.0


class ClassifySchedule:
    """`schedule(faces, crops)`: which of one frame's tracked faces are due for the classifier.
    `rate` 0 classifies every face."""

    def __init__(self, rate: float, change: float = CHANGE):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.change = change
        self._last: dict[int, tuple[float, np.ndarray]] = {}  # track id -> (time, crop) last classified

    def __call__(self, faces: Faces, crops: np.ndarray) -> np.ndarray:
        due = np.ones(len(faces), bool)
        if self.interval <= 0:
            return due
        for i, (track, time) in enumerate(zip(faces.track_ids.tolist(), faces.timestamp_s.tolist())):
            last = self._last.get(track)
            # A millisecond's grace: frame times are rounded, and 2 frames at 30 fps are 1/15 s.
            if last is not None and time - last[0] < self.interval - 1e-3 and \
                    np.abs(crops[i].astype(np.int16) - last[1]).mean() <= self.change:
                due[i] = False
            else:
                self._last[track] = (time, crops[i].astype(np.int16))
        return due

    def reset(self) -> None:
        """After a shot cut: every track starts again."""
        self._last.clear()


def fill_between(faces: Faces) -> Faces:
    """`faces` with each unclassified face's (NaN) probabilities those of its track's last
    classified face before it (the first one after it, for none before). Held rather than
    interpolated: a face classified sooner than its turn changed (`change`), and a face between
    that one and the one before is the face before the change, not a blend of both."""
    missing = np.isnan(faces.probs[:, 0])
    if not missing.any():
        return faces
    probs = faces.probs.copy()
    order = np.lexsort((faces.timestamp_s, faces.track_ids))
    tracks = faces.track_ids[order]
    starts = np.flatnonzero(np.r_[True, tracks[1:] != tracks[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        rows = order[a:b]
        known = ~missing[rows]
        if known.all() or not known.any():
            continue
        # For each face, the position (within its track) of the last classified one up to it.
        last = np.maximum.accumulate(np.where(known, np.arange(len(rows)), -1))
        last[last < 0] = np.flatnonzero(known)[0]
        probs[rows] = faces.probs[rows[last]]
    return faces.with_(probs=probs)
