"""Face embeddings for telling people apart: dlib's 128-D ResNet, a few faces per track.

The models come inside PyPI packages (`face-recognition-models`: the 5-point landmark model and
`dlib_face_recognition_resnet_model_v1.dat`; `dlib-bin`: dlib itself), so nothing is downloaded
at run time. Our BlazeFace boxes are given to dlib's landmark model as `dlib.rectangle`s; no dlib
detector runs.

The ResNet costs about 0.13 s of CPU per face here (dlib-bin is built without BLAS; see README
"Who is who" and bench/identity.py), far more than the rest of the per-face work, so a track is
embedded only a few times: while the frame is in memory the `TrackCandidates` buffer keeps, per
track, the aligned 150x150 chips of its best faces (largest, sharpest, most frontal, most
confidently detected); the chips are embedded once, after analysis, and only for the tracks that
need it (`fer_video.persons.stage.persons_in_video`). Candidates are considered only every few
frames, since neighbouring frames are near copies.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_video.faces.record import Faces

if TYPE_CHECKING:
    import pandas as pd

CHIP_SIZE = 150  # what dlib's ResNet takes
CHIP_PADDING = 0.25  # dlib's default margin around the landmarks
MAX_PER_TRACK = 3  # embeddings per track: each costs about 0.13 s of CPU (bench/identity.py)
MIN_FACE_PX = 36  # a smaller face gives unreliable embeddings; measured, see README "Who is who"
MIN_SHARPNESS = 15.0  # variance of the Laplacian of the 64 px grey face; below is a blur
EVERY_S = 0.2  # seconds between candidates of one track
CHIP_REACH = 1.0  # landmark-box sides around a face that a chip may read (its padding is 0.25)
# BlazeFace's box is tight around eyes to mouth; dlib's 5-point model was trained on its own HOG
# detector's boxes, which are about this much larger. Measured on the test photos: landmarks
# land on the eyes and nose with it, drift without it.
DLIB_BOX_SCALE = 1.1


def _model_paths() -> tuple[str, str]:
    """The two model files inside the installed `face-recognition-models` package, found without
    importing it: its __init__ needs `pkg_resources`, which newer setuptools no longer ship."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (pip install face-recognition-models)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    paths = folder / "shape_predictor_5_face_landmarks.dat", folder / "dlib_face_recognition_resnet_model_v1.dat"
    for path in paths:
        if not path.is_file():
            raise RuntimeError(f"{path}: missing from the face-recognition-models package; reinstall it")
    return str(paths[0]), str(paths[1])


class FaceEmbedder:
    """dlib's landmarks + ResNet. One per process (loading costs about 0.3 s)."""

    _shared: "FaceEmbedder | None" = None

    def __init__(self):
        import dlib

        landmarks, self._resnet_path = _model_paths()
        self._dlib = dlib
        self.shape_predictor = dlib.shape_predictor(landmarks)
        self._resnet = None
        self._lock = threading.Lock()
        self.embedded = 0  # faces run through the ResNet by this process (bench/identity.py reports it)

    @property
    def resnet(self):
        # Loaded on first use (22 MB): a video whose tracks need no embedding never pays for it.
        if self._resnet is None:
            self._resnet = self._dlib.face_recognition_model_v1(self._resnet_path)
        return self._resnet

    @classmethod
    def shared(cls) -> "FaceEmbedder":
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def chip(self, rgb: np.ndarray, box: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The 150x150 RGB face, aligned on its 5 landmarks, of an x, y, w, h box; `rgb` is the
        part of the frame whose top-left corner is at `origin` (the box is the frame's)."""
        x, y, w, h = (float(v) for v in box)
        side = DLIB_BOX_SCALE * max(w, h)
        cx, cy = x + w / 2, y + h / 2
        ox, oy = origin
        rect = self._dlib.rectangle(int(round(cx - side / 2)) - ox, int(round(cy - side / 2)) - oy,
                                    int(round(cx + side / 2)) - ox, int(round(cy + side / 2)) - oy)
        shape = self.shape_predictor(rgb, rect)
        return np.asarray(self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def chip_bgr(self, image_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        """`chip` of a BGR frame, converting only the face's surroundings (CHIP_REACH of its
        landmark box on each side: all that the landmarks and the aligned chip look at) to RGB."""
        x, y, w, h = (float(v) for v in box)
        reach = CHIP_REACH * DLIB_BOX_SCALE * max(w, h)
        height, width = image_bgr.shape[:2]
        x0, y0 = max(int(x - reach), 0), max(int(y - reach), 0)
        x1, y1 = min(int(np.ceil(x + w + reach)), width), min(int(np.ceil(y + h + reach)), height)
        rgb = cv2.cvtColor(image_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2RGB)
        return self.chip(rgb, box, (x0, y0))

    def embed_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """(N, 128) float32 embeddings of aligned chips."""
        if not chips:
            return np.zeros((0, 128), np.float32)
        # A dlib net keeps its activations in itself: two threads (segments, batch jobs) running
        # one net at once would mix their results.
        with self._lock:
            out = self.resnet.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
            self.embedded += len(chips)
        return np.asarray([np.asarray(d) for d in out], np.float32)

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        return self.embed_chips([self.chip(rgb, b) for b in np.asarray(boxes).reshape(-1, 4)])


def frontality(keypoints: np.ndarray) -> float:
    """1 for a face looking at the camera, towards 0 as it turns: how far the nose tip sits from
    the midpoint of the eyes, in eye distances (BlazeFace keypoints 0, 1 eyes, 2 nose). 1 when
    the detector gives no keypoints (Haar)."""
    eyes, nose = keypoints[:2], keypoints[2]
    if not np.all(np.isfinite(keypoints[:3])):
        return 1.0
    distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    if distance < 1:
        return 0.0
    return float(np.clip(1 - 2 * abs(nose[0] - eyes[:, 0].mean()) / distance, 0, 1))


def sharpness(image: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face resized to 64 px: comparable across face sizes.
    `image`: grey, or BGR (only the face is converted)."""
    x, y, w, h = (int(round(v)) for v in box)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    face = image[y0:y1, x0:x1]
    if face.ndim == 3:
        face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    face = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_32F).var())


@dataclass
class _Candidate:
    quality: float
    chip: np.ndarray
    time: float


@dataclass
class _TrackBuffer:
    candidates: list[_Candidate] = field(default_factory=list)
    frames: int = 0
    last_scored: float = -1e9  # when a face of the track was last scored, kept or not


class TrackCandidates:
    """Per track, the chips of its best few faces, gathered while analysis streams the frames.

    Memory: MAX_PER_TRACK chips of 150x150x3 bytes (67 kB) per track.
    """

    def __init__(self, embedder: FaceEmbedder | None = None, per_track: int = MAX_PER_TRACK):
        self.embedder = embedder or FaceEmbedder.shared()
        self.per_track = per_track
        self.tracks: dict[int, _TrackBuffer] = {}

    def add(self, image_bgr: np.ndarray, faces: Faces, time: float) -> None:
        # Colour conversions of each face's surroundings only, not of the whole frame: both are
        # per pixel, so a part converts to the same bytes as it has in the converted frame.
        for box, score, kps, track in zip(faces.boxes, faces.scores, faces.keypoints, faces.track_ids):
            buffer = self.tracks.setdefault(int(track), _TrackBuffer())
            buffer.frames += 1
            if time - buffer.last_scored < EVERY_S or min(box[2], box[3]) < MIN_FACE_PX:
                continue
            buffer.last_scored = time  # not only when kept: else, once a track has its best few, every frame is scored
            sharp = sharpness(image_bgr, box)
            if sharp < MIN_SHARPNESS:
                continue
            # Size saturates at 150 px (the chip's size), sharpness at 4x the floor.
            quality = (float(score) * frontality(kps) * min(1.0, float(box[2]) / CHIP_SIZE)
                       * min(1.0, sharp / (4 * MIN_SHARPNESS)))
            worst = min(buffer.candidates, key=lambda c: c.quality) if buffer.candidates else None
            if len(buffer.candidates) >= self.per_track and quality <= worst.quality:
                continue
            if len(buffer.candidates) >= self.per_track:
                buffer.candidates.remove(worst)
            buffer.candidates.append(_Candidate(quality, self.embedder.chip_bgr(image_bgr, box), time))

    def table(self) -> pd.DataFrame:
        """One row per kept candidate, the best of each track first: track_id, time_s, quality,
        chip (150x150x3 uint8 RGB). Embedding them is left to the caller, who knows which tracks
        survive `keep_faces` and which could be another track's person at all."""
        import pandas as pd

        keys, chips = [], []
        for track, buffer in sorted(self.tracks.items()):
            for c in sorted(buffer.candidates, key=lambda c: -c.quality):
                keys.append((track, c.time, c.quality))
                chips.append(c.chip)
        return pd.DataFrame({
            "track_id": np.array([k[0] for k in keys], np.int32),
            "time_s": np.array([k[1] for k in keys], np.float64),
            "quality": np.array([k[2] for k in keys], np.float32),
            "chip": pd.Series(chips, dtype=object),
        })


def reference_embeddings(folder: str | Path, detector=None) -> dict[str, np.ndarray]:
    """`--people DIR`: one sub-folder of photos per name -> name: (N, 128) embeddings, one per
    photo in which a face is found (the largest one)."""
    from fer_video.faces.detectors import make_detector

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (--people needs one sub-folder of photos per name)")
    detector = detector or make_detector("blazeface", min_face=20)
    embedder = FaceEmbedder.shared()
    out = {}
    for person in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        vectors = []
        for photo in sorted(person.iterdir()):
            image = cv2.imread(str(photo)) if photo.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp") else None
            if image is None:
                continue
            detector.reset()
            faces = detector(image)
            if len(faces):
                biggest = int(np.argmax(faces.boxes[:, 2]))
                vectors.append(embedder.embed(image, faces.boxes[biggest])[0])
        if vectors:
            out[person.name] = np.stack(vectors)
    return out
