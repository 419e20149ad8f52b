"""Who is who: one `person_id` for the tracks of one person, within a video and across a folder.

Within a video (always on, embeddings in memory only): each track's embeddings (see
`fer_video.faces.embed`) are averaged, and tracks are clustered by average linkage on the L2
distance of those means, merging while the closest pair of clusters is nearer than `THRESHOLD`.
Two tracks seen in the same frame are two people, so they are never merged. A person's id is the
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
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# dlib's documented threshold for its ResNet (99.38% on LFW) is 0.6. On our test identities
# (bench/identity.py) same-person track means were at most ~0.35 apart and different people at
# least ~0.6, so 0.5 leaves margin both ways; see README "Who is who".
THRESHOLD = 0.5
IDENTITY_DIR = ".identity"
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
    """Average-linkage clusters of `vectors` (N, D) by L2 distance: a label per vector.

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
                d = float(distance[np.ix_(members[a], members[b])].mean())
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


def co_occurring(rows: pd.DataFrame) -> set[tuple]:
    """Pairs of track keys seen in one frame: (track, track), or ((video, track), (video, track))."""
    pairs = set()
    with_video = "video_id" in rows and rows["video_id"].nunique() > 1
    for _, group in rows.groupby(["video_id", "frame_index"] if "video_id" in rows else ["frame_index"]):
        if len(group) < 2:
            continue
        tracks = group["track_id"].to_numpy()
        keys = [(v, int(t)) for v, t in zip(group["video_id"], tracks)] if with_video else [int(t) for t in tracks]
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
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        pq.write_table(table, partial, compression="zstd")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_embeddings(embeddings: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Store one video's track embeddings (biometric data: only with --identity)."""
    frame = embeddings.assign(video_id=name)
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


def _timeline_keys(out_dir: Path) -> dict[str, tuple[Path, str]]:
    """video_id -> (timeline path, job_key) for every timeline in the folder."""
    from fer_video.timeline.read import timeline_files
    from fer_video.timeline.schema import METADATA_KEY

    out = {}
    for path in timeline_files(out_dir):
        schema = pq.read_schema(path)
        meta = json.loads(schema.metadata[METADATA_KEY]) if schema.metadata and METADATA_KEY in schema.metadata else {}
        out[path.stem] = (path, meta.get("job_key", ""))
    return out


def link_folder(out_dir: str | Path, people: str | Path | None = None, threshold: float = THRESHOLD,
                fresh: bool = False) -> pd.DataFrame:
    """Give the folder's tracks folder-wide person ids (and names, with `people`), incrementally:
    see the module's docstring. Returns the registry (video_id, track_id, person_id, person)."""
    from fer_video.timeline.read import load

    out_dir = Path(out_dir)
    with _link_lock(out_dir):
        timelines = _timeline_keys(out_dir)
        rows = load(out_dir, columns=["video_id", "frame_index", "track_id"])
        embeddings = read_embeddings(out_dir)
        embeddings = embeddings[embeddings["video_id"].isin(list(timelines))]
        registry = read_registry(out_dir)
        current = {v: key for v, (_, key) in timelines.items()}
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
        cannot = {(index[a], index[b]) for a, b in _pairs(rows) if a in index and b in index}
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
        _rewrite_timelines(timelines, registry)
        _write_atomic(pa.Table.from_pandas(registry, schema=REGISTRY_SCHEMA, preserve_index=False),
                      identity_dir(out_dir) / REGISTRY)
    return registry.drop(columns="job_key")


def _pairs(rows: pd.DataFrame) -> set[tuple]:
    pairs = set()
    for (video, _), group in rows.groupby(["video_id", "frame_index"]):
        tracks = [int(t) for t in group["track_id"]]
        for i in range(len(tracks)):
            for j in range(i + 1, len(tracks)):
                pairs.add(((video, tracks[i]), (video, tracks[j])))
    return pairs


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


def _rewrite_timelines(timelines: dict[str, tuple[Path, str]], registry: pd.DataFrame) -> None:
    """Put the registry's person_id and person into each timeline whose values change."""
    from fer_video.timeline.schema import METADATA_KEY, TimelineMetadata
    from fer_video.timeline.write import write_timeline
    from dataclasses import fields

    known = {f.name for f in fields(TimelineMetadata)}
    for video, (path, _) in timelines.items():
        mine = registry[registry["video_id"] == video]
        table = pq.read_table(path)
        meta_values = json.loads(table.schema.metadata[METADATA_KEY])
        rows = table.to_pandas()
        pid = dict(zip(mine["track_id"].astype(int), mine["person_id"].astype(int)))
        pname = dict(zip(mine["track_id"].astype(int), mine["person"]))
        new_ids = rows["track_id"].map(pid).fillna(rows["track_id"]).astype(np.int32)
        new_names = rows["track_id"].map(pname)
        if ("person_id" in rows and "person" in rows and meta_values.get("person_scope") == "folder"
                and (rows["person_id"].to_numpy() == new_ids.to_numpy()).all()
                and rows["person"].fillna("").equals(new_names.fillna("").astype(object))):
            continue
        rows["person_id"] = new_ids
        rows["person"] = new_names.astype(object).where(new_names.notna(), None)
        meta_values["person_scope"] = "folder"
        write_timeline(rows, TimelineMetadata(**{k: v for k, v in meta_values.items() if k in known}), path)
