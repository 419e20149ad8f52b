"""Cutting each face out as FER2013 shows faces: grey, 48x48, same margin, eyes level.

The margin depends on the detector, whose boxes frame a face more or less tightly: each
detector's registry entry (`fer_video.faces.detectors.DETECTORS`) carries its `CropGeometry`,
measured on FER2013 training images (bench/fer_crop_geometry.py reproduces it).

Eyes are levelled using BlazeFace's eye keypoints (roll only, up to 45 degrees); FER2013 faces
are upright, so a tilted head would otherwise be a face unlike any the model was trained on.
"""

from __future__ import annotations

import cv2
import numpy as np

from fer_video.expression.preprocess import FACE_SIZE
from fer_video.faces.detectors import CropGeometry, detector_spec
from fer_video.faces.record import Faces

MAX_ROLL_DEGREES = 45.0


def crop_geometry(detector: str) -> CropGeometry:
    """The FER crop's geometry for boxes from the detector named `detector`, from its registry entry."""
    return detector_spec(detector).crop


def roll_degrees(keypoints: np.ndarray) -> float:
    """Angle of the line between the eyes (keypoints 0 and 1); 0 when they are unknown."""
    a, b = keypoints[0], keypoints[1]
    if not np.all(np.isfinite([a, b])):
        return 0.0
    if a[0] > b[0]:
        a, b = b, a
    angle = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))
    return float(np.clip(angle, -MAX_ROLL_DEGREES, MAX_ROLL_DEGREES))


def fer_crops(image: np.ndarray, faces: Faces, geometry: CropGeometry, level_eyes: bool = True) -> np.ndarray:
    """(N, 48, 48) uint8 grey crops of `faces` from a BGR (or grey) frame."""
    out = np.empty((len(faces), FACE_SIZE, FACE_SIZE), np.uint8)
    if not len(faces):
        return out
    height, width = image.shape[:2]
    for i, (box, kps) in enumerate(zip(faces.boxes, faces.keypoints)):
        x, y, w, h = box
        side = geometry.scale * max(w, h)
        cx, cy = x + w / 2, y + h / 2 + geometry.shift_y * max(w, h)
        # Shrink a region 1.5x the crop with area averaging first, then rotate the small image:
        # warpAffine alone would alias when a large face is scaled down to 48 px.
        region = 1.5 * side
        rx0, ry0 = int(np.floor(cx - region / 2)), int(np.floor(cy - region / 2))
        rside = int(np.ceil(region))
        # Only the region is made grey, not the whole frame: the conversion is per pixel, so the
        # crop is the same, for a fraction of the work on a large frame.
        patch = _padded(image, rx0, ry0, rside, width, height)
        if patch.ndim == 3:
            patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
        small_side = int(round(1.5 * FACE_SIZE))
        interpolation = cv2.INTER_AREA if rside > small_side else cv2.INTER_LINEAR
        small = cv2.resize(patch, (small_side, small_side), interpolation=interpolation)
        angle = roll_degrees(kps) if level_eyes else 0.0
        centre = ((cx - rx0) * small_side / rside, (cy - ry0) * small_side / rside)
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)
        m[:, 2] += np.array([FACE_SIZE / 2, FACE_SIZE / 2]) - centre
        out[i] = cv2.warpAffine(small, m, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    return out


def _padded(image: np.ndarray, x0: int, y0: int, side: int, width: int, height: int) -> np.ndarray:
    """image[y0:y0+side, x0:x0+side] (grey or BGR), edge-replicated where it leaves the frame."""
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + side, width), min(y0 + side, height)
    if xe <= xs or ye <= ys:
        return np.zeros((side, side, *image.shape[2:]), np.uint8)
    patch = image[ys:ye, xs:xe]
    return cv2.copyMakeBorder(patch, ys - y0, y0 + side - ye, xs - x0, x0 + side - xe, cv2.BORDER_REPLICATE)
