"""Box and image helpers the detectors share: area-averaged resizing, MediaPipe's blending NMS,
and clipping faces to the frame."""

from __future__ import annotations

import cv2
import numpy as np

from fer_video.faces.record import Faces, box_iou


def shrink(image: np.ndarray, width: int, height: int, last: int = cv2.INTER_AREA) -> np.ndarray:
    """Area-averaged resize. OpenCV's INTER_AREA is ~7x faster at exactly half size than at an
    arbitrary ratio, so large reductions halve first: 1280x720 -> 192x108 in 0.5 ms, not 3.2.
    `last` resizes the rest of the way (under 2x); detector windows pass INTER_LINEAR, 5x faster
    there than INTER_AREA (0.06 vs 0.33 ms for 150 -> 128 px), which moved the boxes found on
    the bench clips by under a pixel on average, with the same rows, labels and jitter."""
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    interpolation = last if image.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


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
        box, points = blend(boxes, scores, keypoints, cluster)
        out_b.append(box)
        out_k.append(points)
        out_s.append(scores[i])
    if not out_b:
        return Faces.empty()
    return Faces(np.array(out_b), np.array(out_s), np.array(out_k))


def blend(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, cluster: np.ndarray):
    """The score-weighted mean box and keypoints of the candidates in `cluster` (a mask)."""
    w = scores[cluster][:, None]
    return (boxes[cluster] * w).sum(0) / w.sum(), (keypoints[cluster] * w[:, :, None]).sum(0) / w.sum()


def top_face(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, width: int, height: int,
              iou: float = 0.3) -> Faces:
    """`clip_to_frame(weighted_nms(...)[:1], ...)`, the same numbers, for the one face a follow
    window gives: only the best candidate's cluster is blended (the detector's hottest path:
    every followed face, every frame)."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    box, keypoints = blend(boxes, scores, points, box_iou(boxes[:1], boxes)[0] > iou)
    x1, x2 = np.clip(box[0], 0, width), np.clip(box[0] + box[2], 0, width)
    y1, y2 = np.clip(box[1], 0, height), np.clip(box[1] + box[3], 0, height)
    if not (x2 - x1 > 4 and y2 - y1 > 4):
        return Faces.empty()
    return Faces(np.array([[x1, y1, x2 - x1, y2 - y1]], np.float32), scores[:1], keypoints[None])


def clip_to_frame(faces: Faces, width: int, height: int) -> Faces:
    x1, y1, x2, y2 = faces.xyxy.T
    x1, x2 = np.clip(x1, 0, width), np.clip(x2, 0, width)
    y1, y2 = np.clip(y1, 0, height), np.clip(y2, 0, height)
    keep = (x2 - x1 > 4) & (y2 - y1 > 4)
    boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return faces.with_(boxes=boxes)[keep]
