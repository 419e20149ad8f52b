"""The faces of a frame that is not analysed, from the analysed frames either side of it.

Faces move little in a fifteenth of a second, so analysing every frame of a 30 or 60 fps video
mostly repeats the work for the same answer. `analysis_step` says which frames the analysis looks
at (`--analyse-rate`, 15 a second by default); a frame between two of them gets each face that
both show, under its track id, at the box, score and keypoints linear in time between the two
(`faces_between`), and no expression of its own: `fill_between` gives it its track's last
classified probabilities, as for any face the classifier skipped. The two analysed frames are
always of one shot: the frames either side of a shot cut are analysed themselves.

    step = analysis_step(fps=30.0, rate=15.0)           # 2: every other frame
    faces = faces_between(before, after, time=1.0 + 1 / 30)
"""

from __future__ import annotations

import numpy as np

from fer_video.faces.record import Faces


def analysis_step(fps: float, rate: float) -> int:
    """Every how many frames (of `fps`) one is analysed to analyse about `rate` a second; 1 (every
    frame) for `rate` 0, or where `fps` is unknown."""
    if rate <= 0 or not fps > 0:
        return 1
    return max(1, round(fps / rate))


def faces_between(before: Faces, after: Faces, time: float) -> Faces:
    """The faces of the tracks in both `before` and `after` (the faces of two analysed frames,
    stamped with their times by `Faces.in_frame`), as they are at `time` between the two: box,
    score and keypoints interpolated linearly in time, probabilities unknown (NaN). In
    `before`'s order; not yet stamped with a frame. A track in only one of them (it begins or ends
    between the two) has no face here."""
    if not len(before) or not len(after):
        return Faces.empty()
    both = np.isin(before.track_ids, after.track_ids)
    first = before[both]
    last = after[_rows_of(after, first.track_ids)]
    start, end = float(before.timestamp_s[0]), float(after.timestamp_s[0])
    w = np.float32((time - start) / (end - start)) if end > start else np.float32(0)
    return Faces(boxes=(1 - w) * first.boxes + w * last.boxes,
                 scores=(1 - w) * first.scores + w * last.scores,
                 keypoints=(1 - w) * first.keypoints + w * last.keypoints,
                 track_ids=first.track_ids)


def _rows_of(faces: Faces, track_ids: np.ndarray) -> np.ndarray:
    """The row of each of `track_ids` in `faces` (each there once)."""
    order = np.argsort(faces.track_ids, kind="stable")
    return order[np.searchsorted(faces.track_ids[order], track_ids)]
