"""Reading a dataset in the Kaggle FER2013 layout: <folder>/<class>/*.jpg|png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_video.expression.labels import EMOTIONS
from fer_video.expression.preprocess import read_face_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def resolve_split(dataset_dir: str | Path, split: str) -> Path:
    """`dataset_dir/split` if that exists, else `dataset_dir` itself when it holds class folders."""
    root = Path(dataset_dir)
    if (root / split).is_dir():
        return root / split
    if any((root / name).is_dir() for name in EMOTIONS):
        return root
    raise FileNotFoundError(
        f"{root}: no '{split}/' folder and no class folders ({', '.join(EMOTIONS)}) in it"
    )


def load_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All images under folder/<class>/ -> (faces uint8 (N,48,48), labels int (N,), paths).

    Class folders that are missing are allowed (a small test set may lack disgust); files with
    other suffixes are ignored. Sorted paths make the order, and so a seeded split, repeatable.
    """
    folder = Path(folder)
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(EMOTIONS):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(path))
                labels.append(index)
    if not paths:
        raise FileNotFoundError(f"{folder}: no images in any class folder ({', '.join(EMOTIONS)})")
    faces = np.stack([read_face_image(p) for p in paths])
    return faces, np.asarray(labels, dtype=np.int64), paths


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) with `fraction` of every class held out, repeatable by seed."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fraction))
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))
