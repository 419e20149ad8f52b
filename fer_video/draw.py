"""Drawing faces onto frames: a box per face with its track id, label, confidence and a bar of
the seven smoothed probabilities. Colours per emotion are defined here and shared with plots."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from fer_video.expression.labels import EMOTIONS
from fer_video.faces.record import Faces
from fer_video.video.planes import i420_planes

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


FONT = cv2.FONT_HERSHEY_SIMPLEX
BAR_COLUMN_MIN = 4  # px per emotion in the probability bar, however small the face


@dataclass
class Label:
    """Where one face's label goes: its text and the rectangle (x0, y0, x1, y1) it fills."""

    text: str
    rect: tuple[int, int, int, int]
    baseline: int  # y of the text's baseline
    font_scale: float
    thickness: int


def style(width: int, height: int) -> tuple[float, int]:
    """Font scale and line thickness for a frame: capitals 1.25% of the frame's longer side (16 px
    at 1280x720, 24 px at 1080p), never under 11 px, so labels read alike at any size."""
    text_px = max(11.0, 0.0125 * max(width, height))
    font_scale = text_px / 22.0  # HERSHEY_SIMPLEX's capital height is about 22 px at scale 1
    return font_scale, max(1, round(font_scale * 1.6))


def _texts(track: int, person: str, label: str, p: float) -> list[str]:
    """The label's wordings, longest first: a shorter one is used when a longer one is wider
    than its face's box. The track id and the emotion always show: they tie the frame to the
    timeline's rows."""
    full = [f"#{track}{person} {label} {p:.0%}", f"#{track} {label} {p:.0%}", f"#{track} {label}"]
    return list(dict.fromkeys(full))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_labels(faces: Faces, persons: list[str] | None, width: int, height: int,
                  probs: np.ndarray) -> list[Label]:
    """One label per face, inside the frame and clear of each other where the frame allows.

    Each face takes the longest wording (`_texts`) that finds a place clear of the other faces'
    boxes and bars and of the labels already placed: above its box, else inside the box's top,
    else below its bar. A lone face's label may be wider than its box; in a crowd a label
    shortens instead of covering a neighbour. Where no wording finds such a place, the shortest
    wording that fits the box (or the shortest) moves down from the first place in steps of its
    own height until it is clear of the other labels. Larger faces are placed first."""
    font_scale, thickness = style(width, height)
    order = np.argsort(-faces.boxes[:, 2] * faces.boxes[:, 3], kind="stable") if len(faces) else []
    placed: dict[int, Label] = {}
    bar_h = bar_height(width, height)
    whole = _pixel_boxes(faces.boxes)
    bars = [bar_rect(box, bar_h) for box in whole]
    boxes = [_rect(box) for box in whole]
    taken: list[tuple[int, int, int, int]] = []
    for i in order:
        x, y, w = boxes[i][0], boxes[i][1], boxes[i][2] - boxes[i][0]
        neighbours = bars[:i] + bars[i + 1:] + boxes[:i] + boxes[i + 1:]
        k = int(np.argmax(probs[i]))
        person = f" {persons[i]}" if persons is not None and persons[i] else ""
        sized = []
        for text in _texts(int(faces.track_ids[i]), person, EMOTIONS[k], float(probs[i][k])):
            (tw, th), base = cv2.getTextSize(text, FONT, font_scale, thickness)
            lw, lh = min(tw + 4, width), th + base + 2
            sized.append((text, lw, lh, th))
        choice = None
        for text, lw, lh, th in sized:
            left = int(np.clip(x, 0, max(width - lw, 0)))
            for top in (y - lh, y, bars[i][3] + 2):
                rect = (left, top, left + lw, top + lh)
                if 0 <= top <= height - lh and not any(_overlaps(rect, r) for r in taken + neighbours):
                    choice = (text, rect, th)
                    break
            if choice:
                break
        if choice is None:
            text, lw, lh, th = next((s for s in sized if s[1] <= max(w, 1)), sized[-1])
            left = int(np.clip(x, 0, max(width - lw, 0)))
            top = int(np.clip(y - lh if y - lh >= 0 else y, 0, max(height - lh, 0)))
            while any(_overlaps((left, top, left + lw, top + lh), r) for r in taken) and top + 2 * lh <= height:
                top += lh
            choice = (text, (left, top, left + lw, top + lh), th)
        text, rect, th = choice
        taken.append(rect)
        placed[int(i)] = Label(text, rect, rect[1] + th + 1, font_scale, thickness)
    return [placed[i] for i in range(len(faces))]


def _pixel_boxes(boxes: np.ndarray) -> list[list[int]]:
    """Each box (x, y, w, h) rounded to whole pixels, as Python ints (half to even, as `round`)."""
    return np.rint(boxes).astype(np.int64).tolist()


def _rect(box: list[int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return x, y, x + w, y + h


def bar_rect(box: list[int], bar_h: int) -> tuple[int, int, int, int]:
    """The probability bar's rectangle under a face's box (in whole pixels, `_pixel_boxes`)."""
    x, y, w, h = box
    return x, y + h + 3, x + max(w, BAR_COLUMN_MIN * len(EMOTIONS)), y + h + 3 + bar_h


def bar_height(width: int, height: int) -> int:
    return max(10, round(0.02 * max(width, height)))


def draw_faces(image: np.ndarray, faces: Faces, persons: list[str] | None = None) -> np.ndarray:
    """Annotate `image` in place with `faces`' smoothed probabilities (raw ones for faces not
    smoothed yet): a box, a label (`layout_labels`) and a bar of the seven probabilities below the
    box. persons: a name or `person_<id>` per face, shown after the track id ("" for none)."""
    height, width = image.shape[:2]
    probs = _shown(faces)
    _draw(image, _pixel_boxes(faces.boxes), probs, layout_labels(faces, persons, width, height, probs), (0, 0),
          (width, height))
    return image


WHOLE_FRAME_SHARE = 0.5  # regions drawn on covering more of the frame than this: the whole frame is converted


def draw_faces_i420(pixels: np.ndarray, faces: Faces, persons: list[str] | None = None,
                    in_place: bool = False) -> np.ndarray:
    """`draw_faces` on a frame held as I420 planes (H*3/2 x W, even sides, as `read_frames` gives
    it): a new frame with the faces drawn (`pixels` itself, drawn on, with `in_place`), the same
    bytes as converting the whole frame to BGR, drawing and converting back. Only the parts drawn
    on go through BGR: both conversions work on each 2x2 block of pixels alone, so a region on
    even coordinates converts as it would within the whole frame."""
    if not len(faces):
        return pixels if in_place else pixels.copy()
    height, width = pixels.shape[0] * 2 // 3, pixels.shape[1]
    probs = _shown(faces)
    labels = layout_labels(faces, persons, width, height, probs)
    boxes = _pixel_boxes(faces.boxes)
    regions = _regions(boxes, labels, width, height)
    if sum((x1 - x0) * (y1 - y0) for (x0, y0, x1, y1), _ in regions) > WHOLE_FRAME_SHARE * width * height:
        image = cv2.cvtColor(pixels, cv2.COLOR_YUV2BGR_I420)
        _draw(image, boxes, probs, labels, (0, 0), (width, height))
        return cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420, dst=pixels if in_place else None)
    out = pixels if in_place else pixels.copy()
    y, u, v = i420_planes(out, width, height)
    for (x0, y0, x1, y1), members in regions:
        luma = (slice(y0, y1), slice(x0, x1))
        chroma = (slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2))
        region = np.empty(((y1 - y0) * 3 // 2, x1 - x0), np.uint8)
        ry, ru, rv = i420_planes(region, x1 - x0, y1 - y0)
        ry[:], ru[:], rv[:] = y[luma], u[chroma], v[chroma]
        image = cv2.cvtColor(region, cv2.COLOR_YUV2BGR_I420)
        # The faces drawn within this region, in their order (no other face's drawing reaches it).
        _draw(image, [boxes[i] for i in members], probs[members], [labels[i] for i in members], (x0, y0),
              (width, height))
        y[luma], u[chroma], v[chroma] = i420_planes(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), x1 - x0, y1 - y0)
    return out


def _shown(faces: Faces) -> np.ndarray:
    return np.where(np.isnan(faces.smoothed), faces.probs, faces.smoothed)


def _regions(boxes: list[list[int]], labels: list[Label], width: int,
             height: int) -> list[tuple[tuple[int, int, int, int], list[int]]]:
    """Rectangles (x0, y0, x1, y1) on even coordinates, within the frame and apart from each
    other, that hold every pixel `_draw` may touch: each face's box lines (their thickness spreads
    to both sides), bar and label, with a margin; overlapping ones merged. Each with the faces
    whose drawing it holds, in order."""
    bar_h, margin = bar_height(width, height), 2
    regions = []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        x, y, x1, y1 = _rect(box)
        pad = label.thickness + 2
        parts = [label.rect, (x - pad, y - pad, x1 + pad, y1 + pad), bar_rect(box, bar_h)]
        region = (max(min(r[0] for r in parts) - margin, 0) // 2 * 2,
                  max(min(r[1] for r in parts) - margin, 0) // 2 * 2,
                  min(-(-(max(r[2] for r in parts) + margin) // 2) * 2, width // 2 * 2),
                  min(-(-(max(r[3] for r in parts) + margin) // 2) * 2, height // 2 * 2))
        if region[2] > region[0] and region[3] > region[1]:
            regions.append((region, [i]))
    merged = True
    while merged:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                if _overlaps(regions[i][0], regions[j][0]):
                    (a, first), (b, second) = regions[i], regions.pop(j)
                    regions[i] = ((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])),
                                  sorted(first + second))
                    merged = True
                    break
            if merged:
                break
    return regions


def _draw(image: np.ndarray, boxes: list[list[int]], probs: np.ndarray, labels: list[Label], origin: tuple[int, int],
          frame: tuple[int, int]) -> None:
    """Draw onto `image`, the part of a `frame` (width, height) whose top-left corner is at `origin`."""
    ox, oy = origin
    width, height = frame
    for (x, y, w, h), p, label in zip(boxes, probs, labels):
        color = EMOTION_COLORS_BGR[EMOTIONS[int(np.argmax(p))]]
        cv2.rectangle(image, (x - ox, y - oy), (x + w - ox, y + h - oy), color, label.thickness)
        _probability_bar(image, x, y + h + 3, max(w, BAR_COLUMN_MIN * len(EMOTIONS)), p, origin, frame)
    for p, label in zip(probs, labels):  # labels last: over any box or bar
        x0, y0, x1, y1 = label.rect
        patch = _label_patch(label.text, EMOTION_COLORS_BGR[EMOTIONS[int(np.argmax(p))]], label.font_scale,
                             label.thickness, x1 - x0, y1 - y0, label.baseline - y0)
        # Clipped to the image (a region of the frame, or the frame: the label is inside it).
        top, left = max(y0 - oy, 0), max(x0 - ox, 0)
        bottom, right = min(y1 - oy, image.shape[0]), min(x1 - ox, image.shape[1])
        if bottom > top and right > left:
            image[top:bottom, left:right] = patch[top - (y0 - oy) : bottom - (y0 - oy), left - (x0 - ox) : right - (x0 - ox)]


@functools.lru_cache(maxsize=512)
def _label_patch(text: str, color: tuple[int, int, int], font_scale: float, thickness: int, width: int, height: int,
                 baseline: int) -> np.ndarray:
    """A label as drawn: its rectangle filled with `color`, the text in black on it. Text with
    anti-aliasing costs 0.1-0.2 ms a label; the same label is drawn on many frames, so it is drawn
    once (the text stays inside its rectangle, so the patch is all the label touches)."""
    patch = np.empty((height, width, 3), np.uint8)
    patch[:] = color
    cv2.putText(patch, text, (2, baseline), FONT, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    patch.flags.writeable = False
    return patch


def _probability_bar(image: np.ndarray, x: int, y: int, w: int, probs: np.ndarray, origin: tuple[int, int],
                     frame: tuple[int, int]) -> None:
    """Seven thin columns, one per emotion in EMOTIONS order, heights proportional to p; clipped
    to the frame (width, height), drawn onto `image`, its part whose top-left corner is at `origin`."""
    col_w = max(BAR_COLUMN_MIN, w // len(EMOTIONS))
    width, height = frame
    bar_h = bar_height(width, height)
    ox, oy = origin
    if y + bar_h >= height:
        return
    heights = np.maximum(np.rint(probs * bar_h), 1).astype(np.int64).tolist()  # as round(), at once
    for i, (name, column) in enumerate(zip(EMOTIONS, heights)):
        x0 = x + i * col_w
        if x0 + col_w - 1 >= width or x0 < 0:
            break
        top = y + bar_h - column
        cv2.rectangle(image, (x0 - ox, y - oy), (x0 + col_w - 2 - ox, y + bar_h - oy), (40, 40, 40), cv2.FILLED)
        cv2.rectangle(image, (x0 - ox, top - oy), (x0 + col_w - 2 - ox, y + bar_h - oy), EMOTION_COLORS_BGR[name],
                      cv2.FILLED)
