"""The per-video persons stage: the best face chips of each track embedded (see
`fer_video.faces.embed`), tracks clustered into persons (`fer_video.persons.cluster`).

A person's id is the smallest track id among its tracks, so a track that is its own person keeps
`person_id == track_id` (which is also how timelines written before person_id existed are read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fer_video.faces.record import Faces
from fer_video.persons.cluster import THRESHOLD, cluster, co_occurring, track_means

if TYPE_CHECKING:
    import pandas as pd


def person_ids(rows: pd.DataFrame, embeddings: pd.DataFrame, threshold: float = THRESHOLD) -> dict[int, int]:
    """Within one video: track_id -> person_id (the smallest track id of the person's tracks)."""
    tracks = sorted(int(t) for t in rows["track_id"].unique()) if len(rows) else []
    means = track_means(embeddings)
    embedded = [t for t in tracks if t in means]
    mapping = {t: t for t in tracks}
    if len(embedded) > 1:
        index = {t: i for i, t in enumerate(embedded)}
        cannot = {(index[a], index[b]) for a, b in co_occurring(rows) if a in index and b in index}
        labels = cluster(np.stack([means[t] for t in embedded]), threshold, cannot)
        for label in set(labels):
            group = [t for t, l in zip(embedded, labels) if l == label]
            for t in group:
                mapping[t] = min(group)
    return mapping


def assign_persons(faces: Faces, embeddings: pd.DataFrame, threshold: float = THRESHOLD) -> Faces:
    """`faces` with person ids set, and no names (those come from folder linking only)."""
    mapping = person_ids(_placed(faces), embeddings, threshold)
    ids = np.array([mapping[int(t)] for t in faces.track_ids], np.int64).reshape(len(faces))
    return faces.with_(person_ids=ids, persons=None)


def _placed(faces: Faces) -> pd.DataFrame:
    """Which track each face belongs to and in which frame, one row per face: what the clustering
    (`person_ids`, `co_occurring`) reads."""
    import pandas as pd

    return pd.DataFrame({"frame_index": faces.frame_index, "track_id": faces.track_ids})


# -- the hooks `fer_video.pipeline` calls ------------------------------------------------------


def chip_gatherer(options):
    """What `analyse` hands each frame's tracked faces to (the per-track buffer of the best face
    chips), or None when person linking is off."""
    if not (options.persons or options.identity):
        return None
    from fer_video.faces.embed import TrackCandidates

    return TrackCandidates()


def appearance_check(options):
    """The tracker's check that a followed face is still its track's person (a cut the histogram
    cannot see): with embeddings where person linking is on, by the linking's own threshold;
    with `--no-persons` (no embeddings computed) by the face's grey template alone."""
    from fer_video.faces.appearance import AppearanceCheck
    from fer_video.faces.embed import FaceEmbedder

    linking = options.persons or options.identity
    return AppearanceCheck(FaceEmbedder.shared() if linking else None, distance=THRESHOLD)


def renumber_chips(chips: pd.DataFrame | None, mapping: dict) -> pd.DataFrame | None:
    """A segment's chips under the stitched track ids; a track with no id there is dropped, as
    its rows are."""
    if chips is None or not len(chips):
        return chips
    ids = chips["track_id"].map(mapping)
    kept = chips[ids.notna()]
    return kept.assign(track_id=ids[ids.notna()].astype(np.int32))


def join_chips(parts: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    """The segments' chips as one video's: the best MAX_PER_TRACK per track (a track that spans a
    seam was gathered by two segments)."""
    import pandas as pd
    from fer_video.faces.embed import MAX_PER_TRACK

    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    joined = pd.concat(parts, ignore_index=True)
    ordered = joined.sort_values(["track_id", "quality"], ascending=[True, False], kind="stable")
    return ordered.groupby("track_id", sort=True).head(MAX_PER_TRACK).reset_index(drop=True)


def _may_share_a_person(rows: pd.DataFrame) -> set[int]:
    """Tracks that some other track of the video never appears with: only those can be merged,
    so only those need embedding (an interview that never cuts needs none)."""
    tracks = {int(t) for t in rows["track_id"].unique()} if len(rows) else set()
    partners: dict[int, set[int]] = {t: set() for t in tracks}
    for a, b in co_occurring(rows):
        partners[a].add(b)
        partners[b].add(a)
    return {t for t in tracks if len(partners[t]) < len(tracks) - 1}


def embed_chips(chips: pd.DataFrame) -> pd.DataFrame:
    """chips (track_id, time_s, quality, chip) -> embeddings (track_id, time_s, quality, embedding)."""
    import pandas as pd
    from fer_video.faces.embed import FaceEmbedder

    vectors = FaceEmbedder.shared().embed_chips(list(chips["chip"])) if len(chips) else np.zeros((0, 128), np.float32)
    return pd.DataFrame({"track_id": chips["track_id"].to_numpy(np.int32), "time_s": chips["time_s"].to_numpy(float),
                         "quality": chips["quality"].to_numpy(np.float32), "embedding": list(vectors)})


def persons_in_video(kept: Faces, chips: pd.DataFrame | None, ids: dict[int, int],
                     options) -> tuple[Faces, pd.DataFrame | None]:
    """`kept` (the faces `keep_faces` left) with person ids set, and the embeddings made. `ids`:
    `keep_faces`'s map from the analysis's track ids (the chips') to the kept ones; the chips of
    tracks it does not hold are dropped with their tracks.

    Only the chips of kept tracks are embedded; without --identity only those of tracks that
    could be another track's person (`_may_share_a_person`), and beyond each one's best face only
    where that leaves the answer in doubt (`AMBIGUOUS`). With person linking off (no chips) every
    track is its own person."""
    if chips is None:
        return kept.with_(person_ids=kept.track_ids.copy(), persons=None), None
    chips = renumber_chips(chips, ids)
    if options.identity:  # stored for linking with videos not seen yet: every kept track, fully
        embeddings = embed_chips(chips[chips["track_id"].isin({int(t) for t in kept.track_ids})])
    else:
        embeddings = _embed_as_needed(_placed(kept), chips)
    return assign_persons(kept, embeddings), embeddings


# Within a video, a track's best face is embedded first; its other chips only when that one
# embedding is this close to the threshold for some track it could be merged with (one person's
# single faces measured up to 0.47 apart, 0.20 median, different people from 0.45, 0.57 at the
# 1st percentile: docs/identity.md). Most tracks are decided by one ResNet run instead of
# MAX_PER_TRACK.
AMBIGUOUS = 0.15


def _embed_as_needed(rows: pd.DataFrame, chips: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    candidates = _may_share_a_person(rows)
    chips = chips[chips["track_id"].isin(candidates)]
    best = chips.groupby("track_id", sort=True).head(1)  # `table()` puts each track's best first
    first = embed_chips(best)
    if len(first) < 2:
        return first
    tracks = first["track_id"].to_numpy()
    vectors = np.stack(first["embedding"].to_list())
    distance = np.linalg.norm(vectors[:, None] - vectors[None, :], axis=2)
    together = co_occurring(rows)
    unsure = set()
    for i, a in enumerate(tracks):
        for j, b in enumerate(tracks[:i]):
            if (int(a), int(b)) in together or (int(b), int(a)) in together:
                continue
            if abs(distance[i, j] - THRESHOLD) < AMBIGUOUS:
                unsure |= {int(a), int(b)}
    rest = chips.drop(best.index)
    more = embed_chips(rest[rest["track_id"].isin(unsure)])
    return pd.concat([first, more], ignore_index=True).sort_values(["track_id", "quality"], ascending=[True, False],
                                                                   kind="stable").reset_index(drop=True)
