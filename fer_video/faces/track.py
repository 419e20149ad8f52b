"""A small multi-face tracker: constant-velocity prediction, Hungarian matching, shot cuts.

A face keeps its id while it is in view, through misses of up to `max_gap` seconds (a blink of
the detector, a hand passing); a new face gets the next id; a shot cut ends every track, so two
people on either side of a cut are never glued together. A cut the colour histogram cannot see
(two people framed alike on the same background, as interviews and news cut) is caught by the
`same_face` check, when one is given: a function of (track, image, box, time) that says whether
the face matched to a track is still the track's person (`fer_video.faces.appearance`); when it
is not, the track ends and the face starts a new one. Time, not frame count, drives it, so it
behaves the same with `--stride` and with variable frame rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np
from fer_video.faces.assign import linear_sum_assignment  # not SciPy's: its import costs ~0.7 s

from fer_video.faces.detectors.geometry import shrink
from fer_video.faces.record import Faces, box_iou


@dataclass
class Track:
    id: int
    box: np.ndarray  # x, y, w, h at `time`
    velocity: np.ndarray  # d(box)/dt, pixels per second
    time: float
    appearance: Any = None  # what the `same_face` check keeps of the face; its own business

    def predict(self, t: float) -> np.ndarray:
        dt = min(t - self.time, 0.5)  # don't extrapolate a stale velocity far
        box = self.box + self.velocity * dt
        box[2:] = np.maximum(box[2:], 4)
        return box


SameFace = Callable[[Track, np.ndarray, np.ndarray, float], bool]


class Tracker:
    def __init__(self, max_gap: float = 1.0, min_iou: float = 0.05, max_centre_distance: float = 1.0,
                 same_face: SameFace | None = None):
        self.max_gap = max_gap
        self.min_iou = min_iou
        self.max_centre_distance = max_centre_distance  # in face widths
        # (track, image, box, time) -> whether the face in `box` is still the track's person. It
        # is called for every face given to a track, a new track's first included (where it
        # records the face and says True), and may keep what it needs in `track.appearance`.
        self.same_face = same_face
        self.tracks: list[Track] = []
        self.next_id = 1

    def reset(self) -> None:
        """End every track (a shot cut). Ids keep counting, so they stay unique in a video."""
        self.tracks = []

    def update(self, faces: Faces, time: float, image: np.ndarray | None = None) -> Faces:
        """Track ids for `faces`, seen at `time` (seconds). `image` (BGR) is what the `same_face`
        check looks at; without it there is no check."""
        self.tracks = [t for t in self.tracks if time - t.time <= self.max_gap]
        check = self.same_face if image is not None else None
        ids = np.full(len(faces), -1, np.int64)
        if self.tracks and len(faces):
            predicted = np.array([t.predict(time) for t in self.tracks])
            cost = self._cost(predicted, faces.boxes)
            rows, cols = linear_sum_assignment(cost)
            ended = set()
            for r, c in zip(rows, cols):
                if cost[r, c] >= 1e6:
                    continue
                if check is not None and not check(self.tracks[r], image, faces.boxes[c], time):
                    ended.add(r)  # another person where the track's face was: a new track, below
                    continue
                self._follow(self.tracks[r], faces.boxes[c], time)
                ids[c] = self.tracks[r].id
            self.tracks = [t for r, t in enumerate(self.tracks) if r not in ended]
        # New faces are numbered left to right, not in the detector's output order, so that ids
        # do not depend on detector internals (and a segmented run numbers them as one pass).
        new = np.flatnonzero(ids < 0)
        for c in new[np.lexsort((faces.boxes[new, 1], faces.boxes[new, 0]))]:
            track = Track(self.next_id, faces.boxes[c].copy(), np.zeros(4, np.float32), time)
            if check is not None:
                check(track, image, faces.boxes[c], time)  # records the face the track starts with
            self.tracks.append(track)
            ids[c] = track.id
            self.next_id += 1
        return faces.with_(track_ids=ids)

    def _cost(self, predicted: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """1 - IoU plus centre distance in face widths; impossible pairs cost 1e9."""
        iou = box_iou(predicted, boxes)
        centre_p = predicted[:, :2] + predicted[:, 2:] / 2
        centre_b = boxes[:, :2] + boxes[:, 2:] / 2
        size = np.maximum(predicted[:, 2:3], boxes[:, 2][None, :])
        distance = np.linalg.norm(centre_p[:, None, :] - centre_b[None, :, :], axis=2) / size
        ratio = predicted[:, 2:3] / boxes[:, 2][None, :]
        plausible = ((iou >= self.min_iou) | (distance <= self.max_centre_distance)) & (ratio > 0.5) & (ratio < 2.0)
        return np.where(plausible, (1 - iou) + distance, 1e9)

    @staticmethod
    def _follow(track: Track, box: np.ndarray, time: float) -> None:
        dt = time - track.time
        if dt > 0:
            # Smoothed velocity: detector jitter alone should not launch a track sideways.
            track.velocity = 0.6 * track.velocity + 0.4 * (box - track.box) / dt
        track.box = box.copy()
        track.time = time


class ShotCutDetector:
    """Flags a frame whose hue-saturation histogram differs sharply from the previous one's.
    Called with the frame, or its `Frame.thumbnail(*ShotCutDetector.SIZE)`, which is cheaper."""

    SIZE = (64, 36)  # the picture the histogram is taken of

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold  # Bhattacharyya distance: 0 same, 1 disjoint
        self._previous: np.ndarray | None = None

    def __call__(self, image: np.ndarray) -> bool:
        small = shrink(image, *self.SIZE)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(hist, hist)
        cut = False
        if self._previous is not None:
            cut = cv2.compareHist(self._previous, hist, cv2.HISTCMP_BHATTACHARYYA) > self.threshold
        self._previous = hist
        return cut
