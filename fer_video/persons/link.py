"""Persons linked across an output folder (`--identity`, the `link` command), named from `--people`
photos, and the timelines' person_id and person columns rewritten.

`link_folder` is incremental: persons already in the registry stay as they are (two of them are
never merged), and tracks of new or re-annotated videos join the nearest person or form new ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fer_video.persons.cluster import THRESHOLD, cluster, co_occurring, track_means
from fer_video.persons.labels import person_labels
from fer_video.persons.store import identity_dir, read_embeddings, read_registry, write_registry


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
        write_registry(registry, out_dir)
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
