"""Tracks clustered into persons by complete linkage on the L2 distance of their mean embeddings.

Two clusters merge only when every track of one is nearer than `THRESHOLD` to every track of the
other, so a person's tracks are pairwise clearly the same face, and a track in doubt with any of
them stays apart (a wrong merge is worse than a split). Two tracks seen in the same frame are two
people, so they are never merged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# dlib's documented threshold for its ResNet (99.38% on LFW) is 0.6, a balance of both errors.
# Here a wrong merge is worse than a split, so the threshold is chosen for precision on labelled
# pairs (bench/identity.py --only pairs, docs/identity.md "Accuracy"): 3 real photos and 30
# FER2013 people, 11 views each. At 0.4 no pair of different people was under it (0 of 46,433
# single faces, 0 of 3,742 tracks), with recall 98.4% of single faces and 100% of tracks; at 0.5
# 94 single-face pairs and 14 track pairs of different people were.
THRESHOLD = 0.4


def track_means(embeddings: pd.DataFrame) -> dict:
    """Mean embedding per key: track_id, or (video_id, track_id) when video_id is a column."""
    if not len(embeddings):
        return {}
    keys = ["video_id", "track_id"] if "video_id" in embeddings else ["track_id"]
    out = {}
    for key, group in embeddings.groupby(keys, sort=True):
        out[key if len(keys) > 1 else int(key[0] if isinstance(key, tuple) else key)] = np.mean(
            np.stack(group["embedding"].to_list()), axis=0)
    return out


def cluster(vectors: np.ndarray, threshold: float = THRESHOLD, cannot_link: set[tuple[int, int]] = frozenset(),
            initial: list[int] | None = None, frozen: set[int] = frozenset()) -> np.ndarray:
    """Complete-linkage clusters of `vectors` (N, D) by L2 distance: a label per vector. Two
    clusters merge only when all their pairs are nearer than `threshold` (the nearest such
    clusters, by their farthest pair, first).

    `cannot_link` pairs (i, j) never end in one cluster; `initial` labels start items together;
    clusters whose initial label is in `frozen` are never merged with each other."""
    n = len(vectors)
    labels = list(range(n)) if initial is None else list(initial)
    if n == 0:
        return np.zeros(0, int)
    distance = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    members: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    forbidden = {(min(a, b), max(a, b)) for a, b in cannot_link}
    while len(members) > 1:
        best, pair = threshold, None
        ids = sorted(members)
        for a_i, a in enumerate(ids):
            for b in ids[a_i + 1:]:
                if a in frozen and b in frozen:
                    continue
                if any((min(i, j), max(i, j)) in forbidden for i in members[a] for j in members[b]):
                    continue
                d = float(distance[np.ix_(members[a], members[b])].max())
                if d < best:
                    best, pair = d, (a, b)
        if pair is None:
            break
        a, b = pair
        keep, drop = (a, b) if (a in frozen or b not in frozen) else (b, a)
        members[keep] += members.pop(drop)
    out = np.empty(n, int)
    for label, items in members.items():
        out[items] = label
    return out


def co_occurring(rows: pd.DataFrame, by_video: bool = False) -> set[tuple]:
    """Pairs of track keys seen in one frame: (track, track) within a video, or with `by_video`
    (rows of a folder) ((video, track), (video, track))."""
    pairs = set()
    for _, group in rows.groupby(["video_id", "frame_index"] if "video_id" in rows else ["frame_index"]):
        if len(group) < 2:
            continue
        tracks = group["track_id"].to_numpy()
        keys = [(v, int(t)) for v, t in zip(group["video_id"], tracks)] if by_video else [int(t) for t in tracks]
        for i in range(len(keys)):
            for j in range(i + 1, len(keys)):
                pairs.add((keys[i], keys[j]))
    return pairs
