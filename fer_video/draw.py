"""Drawing faces onto frames: a box per face with its track id, label, confidence and a bar of
the seven smoothed probabilities. Colours per emotion are defined here and shared with plots."""

from __future__ import annotations

import cv2
import numpy as np

from fer_video.expression.labels import EMOTIONS
from fer_video.faces.record import Faces

# BGR, chosen to be told apart at a glance and to read as the feeling (red anger, yellow joy).
EMOTION_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 60),
    "fear": (150, 60, 140),
    "happy": (30, 200, 250),
    "sad": (200, 120, 40),
    "surprise": (40, 150, 250),
    "neutral": (170, 170, 170),
}


def emotion_colors_rgb() -> dict[str, tuple[float, float, float]]:
    """The same colours as matplotlib RGB tuples in [0, 1]."""
    return {k: (b[2] / 255, b[1] / 255, b[0] / 255) for k, b in EMOTION_COLORS_BGR.items()}


def draw_faces(image: np.ndarray, faces: Faces, persons: list[str] | None = None) -> np.ndarray:
    """Annotate `image` in place with `faces`' smoothed probabilities (raw ones for faces not
    smoothed yet); persons: a name or `person_<id>` per face, shown after the track id ("" for
    none)."""
    height, width = image.shape[:2]
    scale = max(0.4, min(width, height) / 900)
    thickness = max(1, round(2 * scale))
    probs = np.where(np.isnan(faces.smoothed), faces.probs, faces.smoothed)
    for i, (box, track, p) in enumerate(zip(faces.boxes, faces.track_ids, probs)):
        x, y, w, h = (int(round(v)) for v in box)
        k = int(np.argmax(p))
        label, color = EMOTIONS[k], EMOTION_COLORS_BGR[EMOTIONS[k]]
        cv2.rectangle(image, (x, y), (x + w, y + h), color, thickness)
        person = f" {persons[i]}" if persons is not None and persons[i] else ""
        text = f"#{track}{person} {label} {p[k]:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thickness)
        ty = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
        cv2.rectangle(image, (x, ty - th - base), (x + tw + 4, ty + base // 2), color, cv2.FILLED)
        cv2.putText(image, text, (x + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (0, 0, 0), thickness, cv2.LINE_AA)
        _probability_bar(image, x, y + h + (th + base + 8 if ty > y + h else 4), max(w, 70), p, scale)
    return image


def _probability_bar(image: np.ndarray, x: int, y: int, w: int, probs: np.ndarray, scale: float) -> None:
    """Seven thin columns, one per emotion in EMOTIONS order, heights proportional to p."""
    bar_h = int(24 * scale)
    col_w = max(2, w // len(EMOTIONS))
    height, width = image.shape[:2]
    if y + bar_h >= height:
        return
    for i, (name, p) in enumerate(zip(EMOTIONS, probs)):
        x0 = x + i * col_w
        if x0 + col_w - 1 >= width or x0 < 0:
            break
        top = y + bar_h - max(1, int(round(p * bar_h)))
        cv2.rectangle(image, (x0, y), (x0 + col_w - 2, y + bar_h), (40, 40, 40), cv2.FILLED)
        cv2.rectangle(image, (x0, top), (x0 + col_w - 2, y + bar_h), EMOTION_COLORS_BGR[name], cv2.FILLED)
