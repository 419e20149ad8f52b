"""Who is who: the cost of face embeddings and how well persons are linked.

    python bench/identity.py                 # cost, then accuracy
    python bench/identity.py --only cost     # or --only accuracy, pairs, appearance

Cost: dlib's landmarks + aligned chip (per candidate, during analysis) and its ResNet (per
embedded chip, after analysis), as CPU and wall time, with the load average (the development
machine is shared); then the whole pipeline (`annotate`, timeline only) on a 30 s 640x360
"interview" clip at 25 fps (two people, a cut every 5 s between a two-shot and close-ups) with
person ids off (--no-persons), on (the default) and with --identity.

Accuracy: clips with known identities built from the real photos available offline:
scikit-image's astronaut (Eileen Collins), matplotlib's Grace Hopper and, where FER2013 is at
/work/shared/datasets/fer2013, six more people from its public_test split (48 px faces, upscaled:
far blurrier than the two photos). Shot cuts, a person leaving and coming back mirrored or
resized, the same people in a second video. A track is "linked right" when it shares its person
with exactly the tracks of the same true person; "different people merged" is the fraction of
pairs of tracks of different people that share a person. Each same-person pair is the same photo
seen again (mirrored, resized, in another scene): there are no two photos of one person here, so
"linked right" is optimistic and the merge rate over many different people is the telling figure.

Pairs: the linking threshold's precision and recall on a labelled set of pairs of faces, same
person or not: the three real photos (astronaut, Hopper, the cameraman) and, where FER2013 is
present, FER_PEOPLE more people from it (one file each from its class folders, upscaled), each
seen in the 11 views of `fer_video.samples.face_views` (mirrored, cropped, darker, brighter,
turned, half size, blurred, compressed, grey). Two figures: single faces (what the tracker's
appearance check compares) and tracks (the mean of 3 views, disjoint within a pair, as linking
compares track means). Precision: of the pairs under the threshold, the share that are one
person; recall: of the same-person pairs, the share under it.

Appearance: the tracker's cheap signal (`fer_video.faces.appearance`): the grey-template
correlation of each followed face with the one before, for one person (a moving, scaling clip at
25 frames/s, an edited clip at 10) and across a cut between people framed alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_video.faces.detectors import make_detector  # noqa: E402
from fer_video.faces.embed import FaceEmbedder  # noqa: E402
from fer_video.pipeline import AnnotateOptions, annotate  # noqa: E402
from fer_video.samples import (Shot, astronaut_face, cameraman_face, face_views, hopper_face,  # noqa: E402
                               make_shots_clip)

FER2013 = Path("/work/shared/datasets/fer2013/public_test")


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def embedding_cost(repeats: int = 10) -> None:
    detector, embedder = make_detector("blazeface", min_face=20), FaceEmbedder.shared()
    frame = np.zeros((720, 1280, 3), np.uint8)
    face = cv2.copyMakeBorder(astronaut_face(), 80, 80, 80, 80, cv2.BORDER_REFLECT)
    frame[100:100 + face.shape[0], 100:100 + face.shape[1]] = face
    box = detector(frame).boxes[0]
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    embedder.embed_chips([embedder.chip(rgb, box)])  # loads and warms the ResNet
    wall, cpu = time.perf_counter(), time.process_time()
    chips = [embedder.chip(rgb, box) for _ in range(repeats * 5)]
    print(f"landmarks + aligned chip (720p frame): {(time.process_time() - cpu) / len(chips) * 1e3:.1f} ms CPU, "
          f"{(time.perf_counter() - wall) / len(chips) * 1e3:.1f} ms wall per candidate")
    wall, cpu = time.perf_counter(), time.process_time()
    for chip in chips[:repeats]:
        embedder.embed_chips([chip])
    print(f"ResNet embedding: {(time.process_time() - cpu) / repeats * 1e3:.0f} ms CPU, "
          f"{(time.perf_counter() - wall) / repeats * 1e3:.0f} ms wall per chip ({load()})")
    import dlib

    print(f"dlib {dlib.__version__}: DLIB_USE_BLAS={dlib.DLIB_USE_BLAS} USE_AVX_INSTRUCTIONS="
          f"{dlib.USE_AVX_INSTRUCTIONS} DLIB_USE_CUDA={dlib.DLIB_USE_CUDA}")


def interview(path: Path, faces: dict) -> Path:
    both = {"astronaut": (0.3, 0.5, 0, 99), "hopper": (0.72, 0.5, 0, 99)}
    shots = []
    for k in range(6):  # 30 s: two-shot, close-up of one, close-up of the other, ...
        shots.append(Shot(5.0, both if k % 3 == 0 else {("astronaut", "hopper")[k % 3 - 1]: (0.5, 0.5, 0, 99)},
                          scene=k % 3))
    return make_shots_clip(path, shots, faces, fps=25)


def pipeline_cost(folder: Path) -> None:
    clip = interview(folder / "interview.mp4", {"astronaut": astronaut_face(), "hopper": hopper_face()})
    settings = {"--no-persons": dict(persons=False), "person ids (default)": {}, "--identity": dict(identity=True)}
    annotate(clip, AnnotateOptions(out_dir=folder / "warm", video=False, progress=False))  # models loaded
    for label, extra in settings.items():
        best = None
        for attempt in range(2):  # the better of two: the machine is shared
            options = AnnotateOptions(out_dir=folder / f"out{attempt}{len(extra)}{label[:3]}", video=False,
                                      progress=False, **extra)
            embedded = FaceEmbedder.shared().embedded
            wall, cpu = time.perf_counter(), time.process_time()
            result = annotate(clip, options)
            figures = (time.perf_counter() - wall, time.process_time() - cpu, FaceEmbedder.shared().embedded - embedded)
            best = figures if best is None or figures[1] < best[1] else best
        from fer_video.timeline import load as load_rows

        rows = load_rows(result.timeline)
        print(f"annotate 30 s 360p interview (750 frames, {rows['track_id'].nunique()} tracks, "
              f"{rows['person_id'].nunique()} persons), {label}: {best[1]:.1f} s CPU, {best[0]:.1f} s wall, "
              f"{best[2]} faces embedded ({load()})")


def fer2013_faces(n: int = 6) -> dict[str, np.ndarray]:
    """n FER2013 faces, each a different file of another class folder (so another person, as far
    as FER2013 goes), upscaled to the size of the two photos' faces, with a margin for BlazeFace."""
    if not FER2013.is_dir():
        return {}
    out = {}
    classes = sorted(p for p in FER2013.iterdir() if p.is_dir())
    for i in range(n):
        files = sorted(classes[i % len(classes)].glob("*.jpg"))
        grey = cv2.imread(str(files[7 + 13 * i]), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(grey, (150, 150), interpolation=cv2.INTER_CUBIC)
        out[f"fer{i}"] = cv2.cvtColor(cv2.copyMakeBorder(big, 45, 40, 25, 25, cv2.BORDER_REPLICATE),
                                      cv2.COLOR_GRAY2BGR)
    return out


def accuracy_clips(folder: Path) -> tuple[list[Path], dict]:
    faces = {"astronaut": astronaut_face(), "hopper": hopper_face(), **fer2013_faces()}
    people = sorted(faces)
    variants = {}
    for name, face in faces.items():
        variants[name] = face
        variants[name + "~m"] = face[:, ::-1].copy()  # mirrored
        variants[name + "~s"] = cv2.resize(face, None, fx=0.75, fy=0.75)  # smaller
    # Video a: two people per shot, each person in two shots (once as is, once mirrored or
    # smaller), then the astronaut leaving for 1.2 s and coming back.
    shots, truth_a = [], []
    t = 0.0
    for k in range(len(people)):
        left, right = people[k], people[(k + 1) % len(people)]
        lv, rv = (left + ("~m" if k % 2 else ""), right + ("~s" if k % 2 == 0 else ""))
        shots.append(Shot(1.6, {lv: (0.3, 0.5, 0, 9), rv: (0.72, 0.5, 0, 9)}, scene=k))
        truth_a.append((t, t + 1.6, {0.3: left, 0.72: right}))
        t += 1.6
    shots.append(Shot(4.0, {"astronaut": (0.5, 0.5, 0, 1.2), "astronaut~m": (0.5, 0.5, 2.4, 9)}, scene=len(people)))
    truth_a.append((t, t + 4.0, {0.5: "astronaut"}))
    a = make_shots_clip(folder / "a.mp4", shots, variants, fps=5)
    # Video b: every other person again, one per shot.
    shots_b, truth_b, t = [], [], 0.0
    for k, name in enumerate(people[::2]):
        shots_b.append(Shot(1.6, {name + "~s": (0.5, 0.5, 0, 9)}, scene=k + 3))
        truth_b.append((t, t + 1.6, {0.5: name}))
        t += 1.6
    b = make_shots_clip(folder / "b.mp4", shots_b, variants, fps=5)
    return [a, b], {"a": truth_a, "b": truth_b}


def true_person(truth: dict, video: str, t: float, x: float) -> str:
    for start, end, where in truth[video]:
        if start <= t < end:
            return where[min(where, key=lambda fx: abs(fx - x))]
    raise ValueError(f"{video} at {t}: no shot")


def scores(rows, truth: dict, per_video: bool) -> dict[str, float]:
    rows = rows.assign(key=rows["video_id"] + "/" + rows["track_id"].astype(str))
    tracks = {}
    for key, g in rows.groupby("key"):
        video = g["video_id"].iat[0]
        x = float((g["x"] + g["w"] / 2).median()) / 640
        person = (video, int(g["person_id"].iat[0])) if per_video else int(g["person_id"].iat[0])
        tracks[key] = (true_person(truth, video, float(g["timestamp_s"].median()), x), person, video)
    right = merged = pairs = 0
    for a, (ta, pa, va) in tracks.items():
        same = {b for b, (tb, _, vb) in tracks.items() if tb == ta and (vb == va or not per_video)}
        linked = {b for b, (_, pb, _) in tracks.items() if pb == pa}
        right += same == linked
        for b, (tb, pb, vb) in tracks.items():
            if a < b and tb != ta and (va == vb or not per_video):
                pairs += 1
                merged += pa == pb
    people = len({t for t, _, _ in tracks.values()})
    return {"tracks": len(tracks), "people": people, "linked right": right / max(len(tracks), 1),
            "different people merged": merged / max(pairs, 1), "pairs of different people": pairs}


def accuracy(folder: Path) -> None:
    from fer_video.persons.link import link_folder
    from fer_video.timeline import load as load_rows

    clips, truth = accuracy_clips(folder)
    out = folder / "acc"
    for clip in clips:
        annotate(clip, AnnotateOptions(out_dir=out, video=False, progress=False, identity=True))
    for label, per_video in (("within each video", True), ("across the two videos", False)):
        if not per_video:
            link_folder(out)
        s = scores(load_rows(out), truth, per_video)
        print(f"{label}: {s['tracks']} tracks of {s['people']} people; linked right {s['linked right']:.0%}; "
              f"different people merged {s['different people merged']:.1%} of {s['pairs of different people']} pairs")


FER_PEOPLE = 30


def fer2013_people(n: int = FER_PEOPLE) -> dict[str, np.ndarray]:
    """n FER2013 faces taken as n people (files spread over the class folders; the dataset has
    few repeats), 48 px upscaled to about the photos' face size, with a margin."""
    if not FER2013.is_dir():
        return {}
    classes = sorted(p for p in FER2013.iterdir() if p.is_dir())
    out = {}
    for i in range(n):
        files = sorted(classes[i % len(classes)].glob("*.jpg"))
        grey = cv2.imread(str(files[(101 + 37 * i) % len(files)]), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(grey, (120, 120), interpolation=cv2.INTER_CUBIC)
        out[f"fer{i}"] = cv2.cvtColor(cv2.copyMakeBorder(big, 50, 50, 40, 40, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)
    return out


def view_embeddings(people: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """(person, view) -> embedding, as the pipeline makes it: BlazeFace's box, dlib's chip and
    ResNet. A view in which no face is found is left out."""
    detector, embedder = make_detector("blazeface", min_face=20), FaceEmbedder.shared()
    out = {}
    for name, face in people.items():
        for view, image in face_views(face).items():
            canvas = cv2.copyMakeBorder(image, 80, 80, 80, 80, cv2.BORDER_CONSTANT, value=(90, 110, 120))
            detector.reset()
            faces = detector(canvas)
            if len(faces):
                biggest = int(np.argmax(faces.boxes[:, 2]))
                out[name, view] = embedder.embed(canvas, faces.boxes[biggest:biggest + 1])[0]
    return out


def labelled_pairs(vectors: dict, per_track: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Distances and same-person labels of every pair of items: single views (per_track 1) or
    tracks, the means of `per_track` views (a person's views split into disjoint groups)."""
    items = []
    for person in sorted({p for p, _ in vectors}):
        views = [v for (p, _), v in sorted(vectors.items()) if p == person]
        for k in range(len(views) // per_track):
            items.append((person, np.mean(views[k * per_track:(k + 1) * per_track], axis=0)))
    distances, same = [], []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            distances.append(float(np.linalg.norm(items[i][1] - items[j][1])))
            same.append(items[i][0] == items[j][0])
    return np.array(distances), np.array(same)


def precision_recall(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float, int, int]:
    """Precision, recall, false merges (different people under the threshold), same-person pairs."""
    linked = distances < threshold
    true = int((linked & same).sum())
    return true / max(int(linked.sum()), 1), true / max(int(same.sum()), 1), int((linked & ~same).sum()), int(same.sum())


def pairs() -> None:
    from fer_video.persons.cluster import THRESHOLD

    photos = {"astronaut": astronaut_face(), "hopper": hopper_face(), "cameraman": cameraman_face()}
    sets = {"3 photos": photos}
    fer = fer2013_people()
    if fer:
        sets[f"3 photos + {len(fer)} FER2013 people"] = {**photos, **fer}
    for label, people in sets.items():
        vectors = view_embeddings(people)
        found = len({p for p, _ in vectors})
        print(f"{label}: {len(vectors)} views embedded of {found} people ({len(people) * 11} views tried)")
        for kind, per_track in (("single faces", 1), ("tracks (mean of 3 views)", 3)):
            distances, same = labelled_pairs(vectors, per_track)
            print(f"  {kind}: {int(same.sum())} same-person pairs, {int((~same).sum())} of different people; "
                  f"same-person distance max {distances[same].max():.3f} (median {np.median(distances[same]):.3f}), "
                  f"different people min {distances[~same].min():.3f} (1st percentile "
                  f"{np.percentile(distances[~same], 1):.3f})")
            for threshold in sorted({0.35, 0.4, 0.45, 0.5, 0.55, 0.6, THRESHOLD}):
                p, r, wrong, n = precision_recall(distances, same, threshold)
                print(f"    threshold {threshold:.2f}{' (THRESHOLD)' if threshold == THRESHOLD else ''}: "
                      f"precision {p:.1%}, recall {r:.1%}, {wrong} pairs of different people merged")


def appearance(folder: Path) -> None:
    from fer_video.faces.appearance import face_sample, similarity
    from fer_video.samples import make_clip
    from fer_video.timeline import load as load_rows
    from fer_video.video import probe, read_frames

    order = ["astronaut", "hopper", "cameraman"] * 2
    edited = make_shots_clip(folder / "edited.mp4", [Shot(1.0, {n: (0.5, 0.5, 0, 9)}, scene=0) for n in order],
                             {"astronaut": astronaut_face(), "hopper": hopper_face(), "cameraman": cameraman_face()},
                             width=320, height=240, fps=10, face_width=120)
    moving = make_clip(folder / "moving.mp4", seconds=8, fps=25)
    for clip, who in ((edited, lambda t: order[int(t + 1e-6)]), (moving, lambda t: "astronaut")):
        embedded, cpu = FaceEmbedder.shared().embedded, time.process_time()
        rows = load_rows(annotate(clip, AnnotateOptions(out_dir=folder / "app", video=False, progress=False)).timeline)
        cost = (f"{rows['frame_index'].nunique()} frames, {rows['track_id'].nunique()} tracks, "
                f"{FaceEmbedder.shared().embedded - embedded} faces embedded in all (appearance checks and "
                f"linking), {time.process_time() - cpu:.1f} s CPU")
        frames = {f.index: f.image for f in read_frames(probe(clip), 1)}
        same, other = [], []
        for _, group in rows.groupby("person_id"):  # one person each (tests/test_identity.py)
            group = group.sort_values("frame_index")
            previous = None
            for row in group.itertuples():
                face = face_sample(frames[row.frame_index], np.array([row.x, row.y, row.w, row.h]), row.timestamp_s)
                if previous is not None:
                    (same if who(previous[1]) == who(row.timestamp_s) else other).append(similarity(face, previous[0]))
                previous = (face, row.timestamp_s)
        # Across each cut: the last face before it against the first after it.
        ends = rows.sort_values("frame_index").groupby("timestamp_s").first()
        for t in range(1, int(ends.index.max()) + 1):
            before, after = ends[ends.index < t].iloc[-1], ends[ends.index >= t].iloc[0]
            if who(before.name) != who(after.name):
                other.append(similarity(
                    face_sample(frames[before.frame_index], np.array([before.x, before.y, before.w, before.h]), 0),
                    face_sample(frames[after.frame_index], np.array([after.x, after.y, after.w, after.h]), 0)))
        print(f"{clip.name}: one person, face to next face: {min(same):.2f}-{max(same):.2f} "
              f"(median {np.median(same):.2f}, {len(same)} pairs)" + (
                  f"; across a cut to another person: {min(other):.2f}-{max(other):.2f} ({len(other)})" if other else "")
              + f"; {cost}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("cost", "accuracy", "pairs", "appearance"))
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "cost"):
            embedding_cost()
            pipeline_cost(Path(tmp))
        if args.only in (None, "accuracy"):
            accuracy(Path(tmp))
        if args.only in (None, "pairs"):
            pairs()
        if args.only in (None, "appearance"):
            appearance(Path(tmp))


if __name__ == "__main__":
    main()
