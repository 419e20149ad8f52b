"""The layout of an I420 frame as `read_frames` gives it and the encoder takes it: an (H*3/2, W)
uint8 array holding the Y plane (H x W), then U and V (H/2 x W/2 each)."""

from __future__ import annotations

import numpy as np


def i420_planes(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of an I420 frame's Y (H x W), U and V (H/2 x W/2) planes."""
    flat = i420.reshape(-1)
    n, q = width * height, (width // 2) * (height // 2)
    return (flat[:n].reshape(height, width), flat[n : n + q].reshape(height // 2, width // 2),
            flat[n + q : n + 2 * q].reshape(height // 2, width // 2))
