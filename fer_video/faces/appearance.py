"""Is the face a track follows still the same person? The `same_face` check of the tracker.

A cut between two people framed alike on one background moves no box and barely changes the
frame's colour histogram, so neither the tracker's geometry nor `ShotCutDetector` sees it; only
the face itself changes. The check looks at every followed face, cheaply first:

- the face's grey template (the detector's box, 24x24, zero mean, unit norm) is correlated with
  the one of the last face confirmed as the track's. The same person from one analysed frame to
  the next measured 0.71-1.0 (moving, scaling, turning a little, 10 and 25 frames/s), another
  person framed alike 0.17-0.21 (`bench/identity.py --only appearance`). At JUMP or above the
  face is the track's and becomes its reference;
- below JUMP the appearance jumped, and the costly check runs: dlib's embedding of the face
  (`fer_video.faces.embed`, about 0.11 s of CPU) against the embedding of the track's reference
  face. Further apart than `distance` (the persons' linking threshold: a track holds one person
  by the same rule that links tracks into persons), the face is someone else's and the track
  ends. The embedding runs at most once per CHECK_EVERY_S per track, so a face whose template
  keeps jumping (flashes, a hand waving) costs a bounded amount; between checks the track keeps
  the face, and its reference stays the one before the jump, so the next check still sees it;
- a face too small to embed (under MIN_FACE_PX), or any face when there is no embedder
  (`--no-persons` computes no embeddings), ends its track on the template alone, when the
  correlation falls under FLOOR (between the two measured ranges).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fer_video.faces.embed import MIN_FACE_PX, FaceEmbedder
from fer_video.faces.template import correlation, grey_template

JUMP = 0.6  # template correlation under which the embedding is asked
FLOOR = 0.4  # ... and under which, with no embedding to ask, the face is another person's
CHECK_EVERY_S = 0.25  # embedding checks of one track at most this often
REFERENCE_S = 1.0  # a track's reference embedding is reused this long, then made again
MARGIN = 0.5  # kept around the face (of its side) so that dlib's landmarks find it in the crop


@dataclass
class _Face:
    template: np.ndarray  # `grey_template`: 24x24 float32, zero mean, unit norm
    crop: np.ndarray  # BGR, the face and MARGIN around it
    box: np.ndarray  # x, y, w, h of the face within `crop`
    time: float


@dataclass
class _Seen:
    reference: _Face  # the last face confirmed as the track's
    embedding: np.ndarray | None = None  # of an earlier confirmed face, made at `embedded_at`
    embedded_at: float = -1e9
    checked: float = -1e9  # when the embedding was last asked


def face_sample(image: np.ndarray, box: np.ndarray, time: float) -> _Face:
    x, y, w, h = (float(v) for v in box)
    height, width = image.shape[:2]
    pad = MARGIN * max(w, h)
    x0, y0 = int(max(x - pad, 0)), int(max(y - pad, 0))
    x1, y1 = int(min(x + w + pad, width)), int(min(y + h + pad, height))
    crop = image[y0:y1, x0:x1].copy()
    return _Face(grey_template(image, box), crop, np.array([x - x0, y - y0, w, h], np.float32), time)


def similarity(a: _Face, b: _Face) -> float:
    """Normalised correlation of two faces' grey templates: 1 the same picture, about 0 unrelated."""
    return correlation(a.template, b.template)


class AppearanceCheck:
    """The tracker's `same_face`: see the module's docstring. `embedder` None: templates only."""

    def __init__(self, embedder: FaceEmbedder | None = None, distance: float = 0.5, jump: float = JUMP,
                 floor: float = FLOOR, every_s: float = CHECK_EVERY_S):
        self.embedder, self.distance, self.jump, self.floor, self.every_s = embedder, distance, jump, floor, every_s
        self.embedded = 0  # faces this check ran through the ResNet (the cost; bench/identity.py)

    def __call__(self, track, image: np.ndarray, box: np.ndarray, time: float) -> bool:
        face = face_sample(image, box, time)
        seen: _Seen | None = track.appearance
        if seen is None:
            track.appearance = _Seen(face)
            return True
        alike = similarity(face, seen.reference)
        if alike >= self.jump:
            seen.reference = face
            return True
        if self.embedder is None or min(float(box[2]), float(box[3])) < MIN_FACE_PX or not face.crop.size:
            if alike < self.floor:
                return False
            seen.reference = face
            return True
        if time - seen.checked < self.every_s:
            return True  # asked a moment ago; the reference stays the face before the jump
        seen.checked = time
        if seen.embedding is None or time - seen.embedded_at > REFERENCE_S:
            seen.embedding, seen.embedded_at = self._embed(seen.reference), seen.reference.time
        now = self._embed(face)
        if float(np.linalg.norm(now - seen.embedding)) > self.distance:
            return False
        seen.reference, seen.embedding, seen.embedded_at = face, now, time
        return True

    def _embed(self, face: _Face) -> np.ndarray:
        rgb = cv2.cvtColor(face.crop, cv2.COLOR_BGR2RGB)
        self.embedded += 1
        return self.embedder.embed_chips([self.embedder.chip(rgb, face.box)])[0]
