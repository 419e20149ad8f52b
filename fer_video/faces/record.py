"""`Faces`: the columnar record of faces that every stage takes and returns.

The detector fills boxes, scores and keypoints; the tracker track ids; the classifier raw
probabilities; the persons stage person ids; smoothing the smoothed probabilities, and with them
each face's label and confidence; every sink (the Parquet timeline, the annotated video, CSV)
takes it as it is. Arrays stay aligned: row i is one face, and one face is one timeline row, so
the frame's index and time are columns too (the same value on every row of a frame): faces
gathered from several frames for one classifier call, or a whole video's faces, are still one
`Faces`. `data` holds any further per-face columns by name, aligned the same way; each becomes a
column of the timeline. Modelled on supervision's `Detections`.

    faces = Faces(boxes=[[10, 20, 50, 60]], scores=[0.9], keypoints=np.full((1, 6, 2), np.nan))
    faces = faces.with_(track_ids=[1]).in_frame(index=30, time=1.0)
    faces.data["speaker"] = np.array([True])   # a column of its own in every sink
    first = faces[0]                            # still a Faces, every column sliced alike
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from fer_video.expression.labels import EMOTIONS

N_EMOTIONS = 7
N_KEYPOINTS = 6  # BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear


@dataclass
class Faces:
    boxes: np.ndarray  # (N, 4) float32: x, y, w, h in source pixels
    scores: np.ndarray  # (N,) float32 detector confidence
    keypoints: np.ndarray  # (N, 6, 2) float32 in source pixels; NaN where the detector gives none
    track_ids: np.ndarray = field(default=None)  # (N,) int64; -1 before tracking
    probs: np.ndarray = field(default=None)  # (N, 7) float32 raw class probabilities; NaN before classifying
    smoothed: np.ndarray = field(default=None)  # (N, 7) float32 smoothed over the track; NaN before smoothing
    frame_index: np.ndarray = field(default=None)  # (N,) int64 index of the face's frame; -1 before `in_frame`
    timestamp_s: np.ndarray = field(default=None)  # (N,) float64 that frame's time; NaN before `in_frame`
    # (N,) int64: one person's tracks share it (the smallest of their track ids); -1 before the
    # persons stage, which gives a track with no other track of its person its own id.
    person_ids: np.ndarray = field(default=None)
    persons: np.ndarray = field(default=None)  # (N,) object: a person's name (`fer-video link --people`), else None
    data: dict = field(default_factory=dict)  # name -> (N, ...) array: further per-face columns

    def __post_init__(self):
        n = len(self.boxes)
        for name in ARRAYS:
            setattr(self, name, _column(name, getattr(self, name), n))
        self.data = {name: np.asarray(values) for name, values in (self.data or {}).items()}
        for name, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"Faces.data[{name!r}] has {len(values)} rows for {n} faces")

    @classmethod
    def _of(cls, columns: dict, data: dict) -> "Faces":
        """A `Faces` of columns that are already what `__post_init__` makes of them (slices and
        joins of other records' columns): made without checking them again, which costs more
        than the slicing on the per-frame path."""
        faces = object.__new__(cls)
        faces.__dict__.update(columns)
        faces.data = data
        return faces

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, N_KEYPOINTS, 2)))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Faces":
        """The faces selected by an int (one face, still a `Faces`), a slice, a boolean mask or an
        index array."""
        if isinstance(index, (int, np.integer)):
            index = np.array([index])  # a row, not a scalar: every column keeps its rank
        return Faces._of({name: getattr(self, name)[index] for name in ARRAYS},
                         {name: values[index] for name, values in self.data.items()})

    def with_(self, **columns) -> "Faces":
        """A copy with these columns replaced (`data` too: pass the whole mapping)."""
        # The copy has its own `data` mapping: adding a column to it leaves this one as it is.
        if "boxes" in columns or "data" in columns:  # the rows or their extra columns change: all checked
            return replace(self, **{"data": dict(self.data), **columns})
        n = len(self.boxes)
        kept = {name: getattr(self, name) for name in ARRAYS}
        kept.update({name: _column(name, values, n) for name, values in columns.items()})
        return Faces._of(kept, dict(self.data))

    def in_frame(self, index: int, time: float) -> "Faces":
        """These faces stamped with the frame they were found in."""
        n = len(self)
        return self.with_(frame_index=np.full(n, index, np.int64), timestamp_s=np.full(n, time, np.float64))

    @property
    def xyxy(self) -> np.ndarray:
        x, y, w, h = self.boxes.T
        return np.stack([x, y, x + w, y + h], axis=1)

    @property
    def label_ids(self) -> np.ndarray:
        """(N,) index into EMOTIONS of each face's label: the argmax of its smoothed probabilities."""
        return self.smoothed.argmax(axis=1) if len(self) else np.zeros(0, np.int64)

    @property
    def labels(self) -> np.ndarray:
        """(N,) each face's label, as text."""
        return np.asarray(EMOTIONS, dtype=object)[self.label_ids]

    @property
    def confidence(self) -> np.ndarray:
        """(N,) float32: the smoothed probability of each face's label."""
        return self.smoothed[np.arange(len(self)), self.label_ids]

    @staticmethod
    def concat(parts: list["Faces"]) -> "Faces":
        """The faces of `parts` one after another; `data` columns must be the same in every part."""
        if not parts:
            return Faces.empty()
        names = list(parts[0].data)
        if any(list(p.data) != names for p in parts):
            raise ValueError(f"Faces.concat: data columns differ: {sorted({tuple(p.data) for p in parts})}")
        return Faces._of({name: np.concatenate([getattr(p, name) for p in parts]) for name in ARRAYS},
                         {name: np.concatenate([p.data[name] for p in parts]) for name in names})


ARRAYS = tuple(f.name for f in fields(Faces) if f.name != "data")  # the fixed columns, in order


def timeline_columns(faces: Faces) -> dict[str, np.ndarray]:
    """The timeline's per-face columns of `faces`, by name, in the timeline's order: the one place
    a record field becomes a column. The Parquet schema (`fer_video.timeline.schema`) and every
    sink follow from it, and a `data` column follows the fixed ones."""
    x, y, w, h = faces.boxes.T
    return {
        "frame_index": faces.frame_index,
        "timestamp_s": faces.timestamp_s,
        "track_id": faces.track_ids.astype(np.int32),
        "person_id": faces.person_ids.astype(np.int32),
        "person": faces.persons,
        "x": x, "y": y, "w": w, "h": h,
        "det_score": faces.scores,
        **{f"raw_{e}": faces.probs[:, i] for i, e in enumerate(EMOTIONS)},
        **{f"p_{e}": faces.smoothed[:, i] for i, e in enumerate(EMOTIONS)},
        "label": faces.labels,
        "confidence": faces.confidence,
        **faces.data,
    }


def from_timeline_columns(columns, keypoints: np.ndarray | None = None) -> Faces:
    """`Faces` from a timeline's columns (a DataFrame, or a dict of arrays): the way back from
    `timeline_columns`. Keypoints are not kept in a timeline; columns it does not know go to
    `data`; `label` and `confidence` follow from the smoothed probabilities."""
    def get(name, default=None):
        return np.asarray(columns[name]) if name in columns else default

    n = len(get("frame_index"))
    track_ids = get("track_id")
    known = set(timeline_columns(Faces.empty())) | {"video_id", "source_path"}
    return Faces(
        boxes=np.stack([get("x"), get("y"), get("w"), get("h")], axis=1) if n else np.zeros((0, 4)),
        scores=get("det_score"),
        keypoints=keypoints if keypoints is not None else np.full((n, N_KEYPOINTS, 2), np.nan),
        track_ids=track_ids,
        probs=_stacked(columns, "raw_", n),
        smoothed=_stacked(columns, "p_", n),
        frame_index=get("frame_index"),
        timestamp_s=get("timestamp_s"),
        # Timelines written before persons existed: each track its own person.
        person_ids=_filled(get("person_id"), track_ids),
        persons=_names(get("person"), n),
        data={name: np.asarray(columns[name]) for name in columns if name not in known},
    )


def _stacked(columns, prefix: str, n: int) -> np.ndarray | None:
    names = [f"{prefix}{e}" for e in EMOTIONS]
    if not all(name in columns for name in names):
        return None
    return np.stack([np.asarray(columns[name], np.float32) for name in names], axis=1).reshape(n, N_EMOTIONS)


def _filled(values, fallback) -> np.ndarray | None:
    if values is None:
        return fallback
    values = np.asarray(values, dtype=float)
    return np.where(np.isnan(values), fallback, values).astype(np.int64)


def _names(values, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, object)
    return np.array([v if isinstance(v, str) else None for v in values], dtype=object).reshape(n)


GIVEN = object()  # a column the detector always gives: no default
# Each fixed column's shape after its row count, its dtype and what it holds before its stage
# fills it.
COLUMNS = {"boxes": ((4,), np.float32, GIVEN), "scores": ((), np.float32, GIVEN),
           "keypoints": ((N_KEYPOINTS, 2), np.float32, GIVEN), "track_ids": ((), np.int64, -1),
           "probs": ((N_EMOTIONS,), np.float32, np.nan), "smoothed": ((N_EMOTIONS,), np.float32, np.nan),
           "frame_index": ((), np.int64, -1), "timestamp_s": ((), np.float64, np.nan),
           "person_ids": ((), np.int64, -1), "persons": ((), object, None)}


def _column(name: str, values, n: int) -> np.ndarray:
    """`values` as column `name` of `n` faces (its default where None)."""
    if name not in COLUMNS:
        raise TypeError(f"Faces has no column {name!r}")
    shape, dtype, missing = COLUMNS[name]
    if values is None and missing is not GIVEN:
        return np.full((n, *shape), missing, dtype)
    return np.asarray(values, dtype).reshape((n, *shape))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of x, y, w, h boxes."""
    ax1, ay1, aw, ah = (a[:, i : i + 1] for i in range(4))
    bx1, by1, bw, bh = (b[:, i] for i in range(4))
    iw = np.clip(np.minimum(ax1 + aw, bx1 + bw) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay1 + ah, by1 + bh) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter / np.maximum(aw * ah + bw * bh - inter, 1e-9)
