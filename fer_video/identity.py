"""Who is who: one `person_id` for the tracks of one person, within a video and across a folder.

Within a video (always on, embeddings in memory only): each track's embeddings (see
`fer_video.faces.embed`) are averaged, and tracks are clustered by complete linkage on the L2
distance of those means: two clusters merge only when every track of one is nearer than
`THRESHOLD` to every track of the other, so a person's tracks are pairwise clearly the same face,
and a track in doubt with any of them stays apart (a wrong merge is worse than a split). Two
tracks seen in the same frame are two people, so they are never merged. A person's id is the
smallest track id among its tracks, so a track that is its own person keeps `person_id ==
track_id` (which is also how timelines written before person_id existed are read).

Across a folder (`--identity`, which stores embeddings; see README "Who is who" for privacy):
`<out>/.identity/<name>.embeddings.parquet` holds each video's track embeddings, and
`<out>/.identity/persons.parquet` the folder's persons: which (video, track) is which person_id
and, with `--people`, which name. `link_folder` is incremental: persons already in the registry
stay as they are (two of them are never merged), and tracks of new or re-annotated videos join
the nearest person or form new ones. The timelines' person_id and person columns are rewritten
atomically (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_video.outputs import IDENTITY_DIR  # declared there: `is_output` must know the folder too

# dlib's documented threshold for its ResNet (99.38% on LFW) is 0.6, a balance of both errors.
# Here a wrong merge is worse than a split, so the threshold is chosen for precision on labelled
# pairs (bench/identity.py --only pairs, docs/identity.md "Accuracy"): 3 real photos and 30
# FER2013 people, 11 views each. At 0.4 no pair of different people was under it (0 of 46,433
# single faces, 0 of 3,742 tracks), with recall 98.4% of single faces and 100% of tracks; at 0.5
# 94 single-face pairs and 14 track pairs of different people were.
THRESHOLD = 0.4
REGISTRY = "persons.parquet"
EMBEDDINGS_SUFFIX = ".embeddings.parquet"

EMBEDDINGS_SCHEMA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("track_id", pa.int32(), nullable=False),
    pa.field("time_s", pa.float64(), nullable=False),  # when the embedded face was seen
    pa.field("quality", pa.float32(), nullable=False),  # score x frontality x size x sharpness, 0-1
    pa.field("embedding", pa.list_(pa.float32(), 128), nullable=False),  # dlib ResNet, L2 ~1
])
REGISTRY_SCHEMA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("track_id", pa.int32(), nullable=False),
    pa.field("person_id", pa.int32(), nullable=False),  # folder-wide
    pa.field("person", pa.string(), nullable=True),  # a name from --people, else null
    pa.field("job_key", pa.string(), nullable=False),  # of the timeline linked: a new key is a new video
])


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


def assign_persons(rows: pd.DataFrame, embeddings: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """`rows` with person_id (int32) and person (null: named only by folder linking) set."""
    mapping = person_ids(rows, embeddings, threshold)
    rows = rows.copy()
    rows["person_id"] = rows["track_id"].map(mapping).astype(np.int32) if len(rows) else np.zeros(0, np.int32)
    rows["person"] = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    return rows


# -- within a video: the hooks `fer_video.pipeline` calls ------------------------------------


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
    from fer_video.faces.embed import MAX_PER_TRACK

    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    joined = pd.concat(parts, ignore_index=True)
    ordered = joined.sort_values(["track_id", "quality"], ascending=[True, False], kind="stable")
    return ordered.groupby("track_id", sort=True).head(MAX_PER_TRACK).reset_index(drop=True)


def _kept_track_ids(analysed: pd.DataFrame, kept: pd.DataFrame) -> dict[int, int]:
    """Analysis track id -> kept track id. `keep_faces` drops tracks and renumbers the rest; its
    rows are a subset of the analysis's with the same frames and boxes, so the pairs are read off
    the rows themselves rather than from how the renumbering is done."""
    if not len(kept):
        return {}
    on = ["frame_index", "x", "y", "w", "h"]
    pairs = analysed[on + ["track_id"]].merge(kept[on + ["track_id"]], on=on, suffixes=("_old", "_new"))
    pairs = pairs.drop_duplicates(["track_id_old"])
    return dict(zip(pairs["track_id_old"].astype(int), pairs["track_id_new"].astype(int)))


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
    from fer_video.faces.embed import FaceEmbedder

    vectors = FaceEmbedder.shared().embed_chips(list(chips["chip"])) if len(chips) else np.zeros((0, 128), np.float32)
    return pd.DataFrame({"track_id": chips["track_id"].to_numpy(np.int32), "time_s": chips["time_s"].to_numpy(float),
                         "quality": chips["quality"].to_numpy(np.float32), "embedding": list(vectors)})


def persons_in_video(analysed: pd.DataFrame, kept: pd.DataFrame, chips: pd.DataFrame | None,
                     options) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """`kept` (the rows `keep_faces` left) with person_id and person, and the embeddings made.

    Only the chips of kept tracks are embedded; without --identity only those of tracks that
    could be another track's person (`_may_share_a_person`), and beyond each one's best face only
    where that leaves the answer in doubt (`AMBIGUOUS`). With person linking off (no chips) every
    track is its own person."""
    if chips is None:
        rows = kept.assign(person_id=kept["track_id"].astype(np.int32))
        return rows.assign(person=pd.Series([None] * len(rows), index=rows.index, dtype=object)), None
    chips = renumber_chips(chips, _kept_track_ids(analysed, kept))
    if options.identity:  # stored for linking with videos not seen yet: every kept track, fully
        embeddings = embed_chips(chips[chips["track_id"].isin(set(kept["track_id"].astype(int)))])
    else:
        embeddings = _embed_as_needed(kept, chips)
    return assign_persons(kept, embeddings), embeddings


# Within a video, a track's best face is embedded first; its other chips only when that one
# embedding is this close to the threshold for some track it could be merged with (one person's
# single faces measured up to 0.47 apart, 0.20 median, different people from 0.45, 0.57 at the
# 1st percentile: docs/identity.md). Most tracks are decided by one ResNet run instead of
# MAX_PER_TRACK.
AMBIGUOUS = 0.15


def _embed_as_needed(rows: pd.DataFrame, chips: pd.DataFrame) -> pd.DataFrame:
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


def person_labels(rows: pd.DataFrame) -> list[str] | None:
    """What the annotated video writes after each row's track id: the name, else `person_<id>`
    when the person spans more than one track of `rows` (a lone track's person is itself, and
    repeating it is noise); "" otherwise. None without person columns."""
    if "person_id" not in rows:
        return None
    names = rows["person"] if "person" in rows else pd.Series([None] * len(rows), index=rows.index)
    spans = rows.groupby("person_id")["track_id"].nunique()
    return [person_label(p, n) if (isinstance(n, str) or spans[p] > 1) else ""
            for p, n in zip(rows["person_id"], names)]


def person_label(person_id, person=None) -> str:
    """What people read: the name, else `person_<id>`."""
    if person is not None and not (isinstance(person, float) and np.isnan(person)) and person is not pd.NA:
        return str(person)
    return f"person_{int(person_id)}"


# -- the folder: stored embeddings, the registry, linking --------------------------------------


def identity_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / IDENTITY_DIR


def embeddings_path(out_dir: str | Path, name: str) -> Path:
    return identity_dir(out_dir) / f"{name}{EMBEDDINGS_SUFFIX}"


def _write_atomic(table: pa.Table, path: Path) -> Path:
    from fer_video.outputs import atomic_path  # which also removes the temp file on Ctrl-C

    with atomic_path(path) as temp:
        pq.write_table(table, temp, compression="zstd")
    return path


def write_embeddings(embeddings: pd.DataFrame | None, out_dir: str | Path, name: str) -> Path:
    """Store one video's track embeddings (biometric data: only with --identity). A video without
    faces gets an empty file, so that a batch knows its embeddings are there."""
    frame = (embeddings if embeddings is not None else embed_chips(pd.DataFrame(
        {"track_id": [], "time_s": [], "quality": [], "chip": []}))).assign(video_id=name)
    table = pa.table({
        "video_id": pa.array(frame["video_id"], pa.string()),
        "track_id": pa.array(frame["track_id"], pa.int32()),
        "time_s": pa.array(frame["time_s"], pa.float64()),
        "quality": pa.array(frame["quality"], pa.float32()),
        "embedding": pa.array([np.asarray(e, np.float32) for e in frame["embedding"]], pa.list_(pa.float32(), 128)),
    }, schema=EMBEDDINGS_SCHEMA)
    return _write_atomic(table, embeddings_path(out_dir, name))


def read_embeddings(out_dir: str | Path) -> pd.DataFrame:
    files = sorted(identity_dir(out_dir).glob(f"*{EMBEDDINGS_SUFFIX}"))
    files = [f for f in files if not f.name.startswith(".")]
    if not files:
        return pd.DataFrame({"video_id": [], "track_id": [], "time_s": [], "quality": [], "embedding": []})
    frame = pa.concat_tables([pq.read_table(f, schema=EMBEDDINGS_SCHEMA) for f in files]).to_pandas()
    frame["embedding"] = [np.asarray(e, np.float32) for e in frame["embedding"]]
    return frame


def read_registry(out_dir: str | Path) -> pd.DataFrame:
    path = identity_dir(out_dir) / REGISTRY
    if not path.exists():
        return REGISTRY_SCHEMA.empty_table().to_pandas()
    return pq.read_table(path, schema=REGISTRY_SCHEMA).to_pandas()


@contextlib.contextmanager
def _link_lock(out_dir: Path):
    """Two `link`s (or batches) on one folder take turns: both rewrite the same timelines."""
    folder = identity_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".link.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _timelines(out_dir: Path) -> dict:
    """video_id -> `fer_video.timeline.read.Timeline` (path, metadata) of every timeline in the
    folder: the ids the timelines record, as `summary` and `query` see them."""
    from fer_video.timeline.read import scan

    return {t.video_id: t for t in scan(out_dir)}


def link_folder(out_dir: str | Path, people: str | Path | None = None, threshold: float = THRESHOLD,
                fresh: bool = False, relabelled: list | None = None) -> pd.DataFrame:
    """Give the folder's tracks folder-wide person ids (and names, with `people`), incrementally:
    see the module's docstring. Returns the registry (video_id, track_id, person_id, person).
    `relabelled` (a list) gets the timelines whose annotated media now draw other person labels
    than they were drawn with: `fer_video.pipeline.render.redraw` draws them again."""
    from fer_video.timeline.read import load

    out_dir = Path(out_dir)
    with _link_lock(out_dir):
        timelines = _timelines(out_dir)
        rows = load(out_dir, columns=["video_id", "frame_index", "track_id"])
        embeddings = read_embeddings(out_dir)
        embeddings = embeddings[embeddings["video_id"].isin(list(timelines))]
        registry = read_registry(out_dir)
        current = {v: t.metadata.job_key for v, t in timelines.items()}
        if fresh:
            registry = registry.iloc[0:0]
        else:
            # A registry row holds while its video's timeline is the one that was linked.
            registry = registry[registry["video_id"].map(current) == registry["job_key"]]
        known = {(v, int(t)): (int(p), n) for v, t, p, n in
                 registry[["video_id", "track_id", "person_id", "person"]].itertuples(index=False)}

        all_tracks = sorted({(v, int(t)) for v, t in zip(rows["video_id"], rows["track_id"])},
                            key=lambda k: (k[0], k[1]))
        means = track_means(embeddings)
        items = [k for k in all_tracks if k in means]
        index = {k: i for i, k in enumerate(items)}
        cannot = {(index[a], index[b]) for a, b in co_occurring(rows, by_video=True) if a in index and b in index}
        # Known persons start as clusters (label = their person id) that never merge with each
        # other; new tracks start alone (labels above every person id) and may join anything.
        top = max([p for p, _ in known.values()], default=0)
        initial = [known[k][0] if k in known else top + 1 + i for i, k in enumerate(items)]
        frozen = {p for p, _ in known.values()}
        labels = cluster(np.stack([means[k] for k in items]), threshold, cannot, initial, frozen) if items else []
        label_of = dict(zip(items, (int(l) for l in labels)))

        # New persons are numbered after the known ones, in order of video, then track.
        assigned: dict[tuple, int] = {}
        renumber: dict[int, int] = {}
        next_id = top + 1
        for key in all_tracks:
            if key in known:
                assigned[key] = known[key][0]
                continue
            label = label_of.get(key)
            if label is not None and label in frozen:
                assigned[key] = label
            elif label is not None:
                if label not in renumber:
                    renumber[label] = next_id
                    next_id += 1
                assigned[key] = renumber[label]
            else:  # not embedded: a person of its own
                assigned[key] = next_id
                next_id += 1

        names = {p: n for p, n in known.values() if isinstance(n, str)}
        if people is not None:
            names = _match_names(people, assigned, means, threshold)
        registry = pd.DataFrame({
            "video_id": [k[0] for k in all_tracks],
            "track_id": np.array([k[1] for k in all_tracks], np.int32),
            "person_id": np.array([assigned[k] for k in all_tracks], np.int32),
            "person": [names.get(assigned[k]) for k in all_tracks],
            "job_key": [current[k[0]] for k in all_tracks],
        })
        _rewrite_timelines(out_dir, timelines, registry, relabelled)
        _write_atomic(pa.Table.from_pandas(registry, schema=REGISTRY_SCHEMA, preserve_index=False),
                      identity_dir(out_dir) / REGISTRY)
    return registry.drop(columns="job_key")


def _match_names(people: str | Path, assigned: dict, means: dict, threshold: float) -> dict[int, str]:
    """person_id -> name: the name whose photos are nearest (average L2) to the person's track
    means, if nearer than `threshold`; each name goes to its nearest person only."""
    from fer_video.faces.embed import reference_embeddings

    references = reference_embeddings(people)
    by_person: dict[int, list[np.ndarray]] = {}
    for key, person in assigned.items():
        if key in means:
            by_person.setdefault(person, []).append(means[key])
    candidates = []
    for person, vectors in by_person.items():
        v = np.stack(vectors)
        for name, ref in references.items():
            d = float(np.linalg.norm(v[:, None, :] - ref[None, :, :], axis=2).mean())
            if d < threshold:
                candidates.append((d, person, name))
    names: dict[int, str] = {}
    used = set()
    for d, person, name in sorted(candidates):
        if person not in names and name not in used:
            names[person] = name
            used.add(name)
    return names


def _rewrite_timelines(out_dir: Path, timelines: dict, registry: pd.DataFrame,
                       relabelled: list | None = None) -> list[str]:
    """Put the registry's person_id and person into each timeline whose values change, under the
    output's lock (the one `annotate` and `batch` hold), atomically. A timeline being written by a
    run right now is left alone and named in the result: the next `link` (or batch) links it."""
    from dataclasses import replace

    from fer_video.outputs import claim
    from fer_video.timeline.write import write_timeline

    busy = []
    for video, timeline in timelines.items():
        mine = registry[registry["video_id"] == video]
        pid = dict(zip(mine["track_id"].astype(int), mine["person_id"].astype(int)))
        pname = dict(zip(mine["track_id"].astype(int), mine["person"]))
        with claim(out_dir, timeline.path.stem) as held:
            if not held:
                busy.append(video)
                continue
            rows = pq.read_table(timeline.path).to_pandas()
            drawn = person_labels(rows)  # None without person columns
            new_ids = rows["track_id"].map(pid).fillna(rows["track_id"]).astype(np.int32)
            new_names = rows["track_id"].map(pname)
            if ("person_id" in rows and "person" in rows and timeline.metadata.person_scope == "folder"
                    and (rows["person_id"].to_numpy() == new_ids.to_numpy()).all()
                    and rows["person"].fillna("").equals(new_names.fillna("").astype(object))):
                continue
            rows["person_id"] = new_ids
            rows["person"] = new_names.astype(object).where(new_names.notna(), None)
            write_timeline(rows, replace(timeline.metadata, person_scope="folder"), timeline.path)
            if relabelled is not None and person_labels(rows) != drawn:
                relabelled.append(timeline.path)
    return busy
