"""Who is who: person_id across shot cuts, gaps and videos, and names from reference photos.

The people are real photos shipped offline: scikit-image's astronaut (Eileen Collins) and
matplotlib's Grace Hopper; FER2013 faces (many people) where the dataset is present.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fer_video.faces.detectors import make_detector
from fer_video.faces.embed import FaceEmbedder
from fer_video.persons.cluster import THRESHOLD, cluster
from fer_video.samples import Shot, astronaut_face, cameraman_face, hopper_face, make_shots_clip
from tests.helpers import run_cli

FACES = {"astronaut": astronaut_face(), "hopper": hopper_face()}
FER2013 = Path("/work/shared/datasets/fer2013")


def video_a(path: Path) -> Path:
    """Two people, a shot cut where they swap sides, then in one spot: the astronaut, 1.2 s of
    nobody (longer than the tracker's 1 s), Hopper, nobody, the astronaut again."""
    return make_shots_clip(path, [
        Shot(1.6, {"astronaut": (0.3, 0.5, 0, 9), "hopper": (0.72, 0.5, 0, 9)}, scene=0),
        Shot(1.6, {"hopper": (0.3, 0.5, 0, 9), "astronaut": (0.72, 0.5, 0, 9)}, scene=1),
        Shot(5.6, {"astronaut": (0.5, 0.5, 0, 0.8), "hopper": (0.5, 0.5, 2.0, 3.0),
                   "astronaut2": (0.5, 0.5, 4.2, 9)}, scene=2),
    ], {**FACES, "astronaut2": FACES["astronaut"]}, fps=5)


def video_b(path: Path) -> Path:
    return make_shots_clip(path, [Shot(1.6, {"hopper": (0.4, 0.5, 0, 9)}, scene=0),
                                  Shot(1.6, {"astronaut": (0.6, 0.5, 0, 9)}, scene=1)], FACES, fps=5)


def two_sessions_and_photos(tmp_path: Path) -> tuple[Path, Path]:
    """`in/` with video_a and video_b, and `people/<name>/photo.jpg`: each person's face mirrored,
    with a border, so that naming matches other pixels than the videos'."""
    inputs = tmp_path / "in"
    video_a(inputs / "a.mp4")
    video_b(inputs / "b.mp4")
    people = tmp_path / "people"
    for name, face in FACES.items():
        (people / name).mkdir(parents=True)
        photo = cv2.copyMakeBorder(cv2.flip(face, 1), 60, 60, 60, 60, cv2.BORDER_REFLECT)
        cv2.imwrite(str(people / name / "photo.jpg"), photo)
    return inputs, people


def who(rows: pd.DataFrame) -> dict[int, str]:
    """The true person of each track, from where and when the test put the faces."""
    truth = {}
    for track, group in rows.groupby("track_id"):
        t, x = group["timestamp_s"].median(), group["x"].median() + group["w"].median() / 2
        truth[int(track)] = _truth(group["video_id"].iat[0], t, x / 640)
    return truth


def _truth(video: str, t: float, x: float) -> str:
    if video == "b":
        return "hopper" if t < 1.6 else "astronaut"
    if t < 1.6:
        return "astronaut" if x < 0.5 else "hopper"
    if t < 3.2:
        return "hopper" if x < 0.5 else "astronaut"
    return "hopper" if 3.2 + 2.0 <= t < 3.2 + 3.0 else "astronaut"


def test_embeddings_tell_the_two_people_apart_under_flips_scale_and_light():
    detector, embedder = make_detector("blazeface", min_face=20), FaceEmbedder.shared()
    vectors = {}
    for name, face in FACES.items():
        for variant, image in {"as is": face, "mirrored": face[:, ::-1].copy(),
                               "small": cv2.resize(face, None, fx=0.6, fy=0.6), "dark": (face * 0.6).astype(np.uint8)}.items():
            canvas = cv2.copyMakeBorder(image, 80, 80, 80, 80, cv2.BORDER_CONSTANT, value=(90, 110, 120))
            detector.reset()
            faces = detector(canvas)
            assert len(faces) == 1, (name, variant)
            vectors[name, variant] = embedder.embed(canvas, faces.boxes)[0]
    for a, va in vectors.items():
        for b, vb in vectors.items():
            d = np.linalg.norm(va - vb)
            assert (d < THRESHOLD) == (a[0] == b[0]), (a, b, d)


def test_clustering_never_merges_tracks_seen_together():
    vectors = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    assert list(cluster(vectors, 1.0)) == [0, 0, 2]
    labels = cluster(vectors, 1.0, cannot_link={(0, 1)})
    assert labels[0] != labels[1] and labels[2] not in (labels[0], labels[1])


def test_clustering_merges_only_tracks_all_pairwise_near():
    """A track near one of a person's tracks but not the other is in doubt: it stays apart, though
    its average distance to them (0.45) is under the threshold (average linkage merged it)."""
    vectors = np.array([[0.0], [0.3], [0.6]])
    labels = cluster(vectors, 0.5)
    assert labels[0] == labels[1] != labels[2]


def test_person_id_survives_cuts_and_gaps_within_a_video(tmp_path):
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline import load

    result = annotate(video_a(tmp_path / "a.mp4"), AnnotateOptions(out_dir=tmp_path / "out", video=False,
                                                                    progress=False))
    rows = load(result.timeline)
    truth = who(rows)
    assert len(truth) >= 6  # the cut and the gaps split tracks, as before
    persons = rows.groupby("track_id")["person_id"].first().to_dict()
    for a in truth:
        for b in truth:
            assert (persons[a] == persons[b]) == (truth[a] == truth[b]), (a, b, truth, persons)
    assert rows["person"].isna().all()  # no names without --identity --people

    # What the annotated video writes after each track id: the person where it spans more tracks.
    from fer_video.persons.labels import person_labels
    from fer_video.draw import draw_faces
    from fer_video.timeline.rows import faces_by_frame

    labels = dict(zip(rows["track_id"], person_labels(rows)))
    shared = {t for t in truth if sum(persons[u] == persons[t] for u in truth) > 1}
    assert shared and all(labels[t] == f"person_{persons[t]}" for t in shared)
    assert all(labels[t] == "" for t in truth if t not in shared)
    first = next(iter(faces_by_frame(rows.iloc[[0]]).values()))
    plain, named = (np.zeros((360, 640, 3), np.uint8) for _ in range(2))
    draw_faces(plain, first)
    draw_faces(named, first, ["astronaut"])
    assert (named.any(axis=2).sum() > plain.any(axis=2).sum())  # a longer label was drawn
    assert not (tmp_path / "out" / ".identity").exists()  # nothing stored by default


def test_batch_identity_links_videos_and_names_people(tmp_path, monkeypatch):
    # A first ephemeral Prefect server migrates its database: minutes on a busy 2-core machine.
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "480")
    inputs, people = two_sessions_and_photos(tmp_path)
    out = tmp_path / "out"
    done = run_cli("batch", inputs, "--out", out, "--no-video", "--identity", "--people", people, "--concurrency", "1")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / ".identity").iterdir() if not p.name.startswith(".")) == [
        "a.embeddings.parquet", "b.embeddings.parquet", "persons.parquet"]

    from fer_video.timeline import load
    from fer_video.timeline.query import query
    from fer_video.timeline.summary import summary

    rows = load(out)
    assert set(rows["video_id"]) == {"a", "b"}  # the embeddings are not taken for timelines
    keyed = rows.assign(key=rows["video_id"] + "/" + rows["track_id"].astype(str))
    persons = keyed.groupby("key")["person_id"].first()
    names = keyed.groupby("key")["person"].first()
    truth = {k: _truth(k.split("/")[0], g["timestamp_s"].median(), (g["x"].median() + g["w"].median() / 2) / 640)
             for k, g in keyed.groupby("key")}
    for a in truth:
        assert names[a] == truth[a], (a, names[a], truth[a])
        for b in truth:
            assert (persons[a] == persons[b]) == (truth[a] == truth[b]), (a, b)

    by_person = summary(out, by="person")
    assert sorted(by_person["person"]) == ["astronaut", "hopper"]
    assert (by_person["videos"] == 2).all()
    total = query(out, "SELECT person, count(*) AS n FROM timeline GROUP BY person ORDER BY person")
    assert total["n"].sum() == len(rows)

    # Again, without re-analysis: the same persons keep their ids (linking is incremental).
    before = persons.copy()
    again = run_cli("link", out)
    assert again.returncode == 0, again.stderr
    assert "2 persons (2 named)" in again.stdout
    rows = load(out)
    after = rows.assign(key=rows["video_id"] + "/" + rows["track_id"].astype(str)).groupby("key")["person_id"].first()
    assert after.equals(before)
    assert run_cli("summary", out, "--by", "person").returncode == 0
    report = run_cli("report", out, "--video", "a")
    assert report.returncode == 0, report.stderr
    html = (out / "a.report.html").read_text()
    assert '<td class="person">astronaut</td>' in html and '<td class="person">hopper</td>' in html

    # A new session arrives: only it is analysed, and its person joins the one found before.
    make_shots_clip(inputs / "c.mp4", [Shot(2.0, {"hopper": (0.5, 0.5, 0, 9)}, scene=4)], FACES, fps=5)
    third = run_cli("batch", inputs, "--out", out, "--no-video", "--identity", "--concurrency", "1")
    assert third.returncode == 0, third.stderr
    assert "2 skipped" in third.stdout and "1 done" in third.stdout, third.stdout
    rows = load(out)
    keyed = rows.assign(key=rows["video_id"] + "/" + rows["track_id"].astype(str))
    persons_now = keyed.groupby("key")["person_id"].first()
    assert persons_now.drop("c/1").equals(before)  # nobody renumbered
    hopper = {persons[k] for k in truth if truth[k] == "hopper"}
    assert {persons_now["c/1"]} == hopper and keyed.groupby("key")["person"].first()["c/1"] == "hopper"

    from fer_video.outputs import is_output

    assert all(is_output(p) for p in (out / ".identity").iterdir())


def test_older_timelines_without_person_id_read_it_as_track_id(tmp_path):
    from fer_video.timeline import load
    from fer_video.timeline.query import query
    from fer_video.timeline.schema import METADATA_KEY, SCHEMA, TimelineMetadata

    old = pa.schema([f for f in SCHEMA if f.name not in ("person_id", "person")])
    n = 3
    columns = {f.name: pa.array(np.zeros(n), f.type) if pa.types.is_floating(f.type) else None for f in old}
    columns.update(video_id=pa.array(["old"] * n), source_path=pa.array(["/x.mp4"] * n),
                   frame_index=pa.array([0, 0, 1], pa.int64()), timestamp_s=pa.array([0.0, 0.0, 0.04]),
                   track_id=pa.array([1, 2, 1], pa.int32()),
                   label=pa.array(["happy"] * n).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())))
    meta = TimelineMetadata("/x.mp4", 64, 64, 25.0, 1.0, 25, 1, 0, False, "m", "1", "blazeface", "none", "0")
    values = {k: v for k, v in __import__("json").loads(meta.to_bytes()).items() if k != "person_scope"}
    table = pa.table(columns, schema=old).replace_schema_metadata({METADATA_KEY: __import__("json").dumps(values)})
    pq.write_table(table, tmp_path / "old.parquet")
    rows = load(tmp_path)
    assert rows["person_id"].tolist() == rows["track_id"].tolist()
    assert query(tmp_path, "SELECT person_id FROM timeline ORDER BY frame_index, track_id")["person_id"].tolist() == [1, 2, 1]
    from fer_video.timeline.summary import summary

    assert sorted(summary(tmp_path, by="person")["person"]) == ["person_1", "person_2"]


@pytest.mark.skipif(not FER2013.is_dir(), reason="FER2013 not at /work/shared/datasets/fer2013")
def test_different_fer2013_people_are_not_merged():
    """48 px faces from many people, upscaled: far blurrier than video faces, so a hard case
    for wrong merges. Each image is a different person (FER2013 has few repeats)."""
    files = sorted((FER2013 / "public_test" / "happy").glob("*"))[:12]
    embedder = FaceEmbedder.shared()
    vectors = []
    for f in files:
        grey = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        big = cv2.cvtColor(cv2.resize(grey, (144, 144), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        canvas = cv2.copyMakeBorder(big, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        vectors.append(embedder.embed(canvas, np.array([40 + 18, 40 + 22, 108, 108], np.float32))[0])
    labels = cluster(np.stack(vectors), THRESHOLD)
    assert len(set(labels)) == len(files)


def test_a_face_too_small_to_embed_keeps_its_own_person_and_no_persons_links_nothing(tmp_path):
    """The same person in three shots, the middle one too small to embed (a 30 px face, under
    MIN_FACE_PX, found with --min-face 16): the other two share a person, the small one is its
    own; with --no-persons every track is its own person. (A blurred face that BlazeFace still
    finds measured above MIN_SHARPNESS here: blur that strong drops its score under --min-score.)"""
    from fer_video.faces.embed import MIN_FACE_PX
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline import load

    face = FACES["astronaut"]
    small = np.full_like(face, 120)
    shrunk = cv2.resize(face, None, fx=0.4, fy=0.4)
    y0, x0 = (face.shape[0] - shrunk.shape[0]) // 2, (face.shape[1] - shrunk.shape[1]) // 2
    small[y0:y0 + shrunk.shape[0], x0:x0 + shrunk.shape[1]] = shrunk
    clip = make_shots_clip(tmp_path / "small.mp4", [
        Shot(1.6, {"face": (0.5, 0.5, 0, 9)}, scene=0),
        Shot(1.6, {"small": (0.5, 0.5, 0, 9)}, scene=1),
        Shot(1.6, {"face": (0.5, 0.5, 0, 9)}, scene=2),
    ], {"face": face, "small": small}, fps=5)
    by_track = {}
    for persons in (True, False):
        options = AnnotateOptions(out_dir=tmp_path / f"out{persons}", video=False, progress=False,
                                  min_face=16, persons=persons)
        rows = load(annotate(clip, options).timeline)
        by_track[persons] = rows.groupby("track_id").agg(person=("person_id", "first"), t=("timestamp_s", "median"),
                                                        w=("w", "median"))
    linked = by_track[True].sort_values("t")
    assert len(linked) == 3, linked
    assert linked["w"].iat[1] < MIN_FACE_PX <= linked["w"].iat[0]
    first, tiny, last = linked["person"].tolist()
    assert first == last and tiny not in (first, last), linked
    assert tiny == linked.index[1]  # its own person: person_id is its track id
    alone = by_track[False]
    assert (alone["person"] == alone.index).all() and len(alone) == 3


def test_tracks_always_seen_together_are_not_embedded(tmp_path):
    """Two faces in view all the time can never be one person: without --identity nothing is
    embedded (the ResNet, ~0.13 s per face, never runs); with it every kept track is."""
    from fer_video.persons.stage import persons_in_video
    from fer_video.pipeline import AnnotateOptions, analyse, keep_faces, probe

    clip = make_shots_clip(tmp_path / "two.mp4", [Shot(2.0, {"astronaut": (0.3, 0.5, 0, 9),
                                                             "hopper": (0.72, 0.5, 0, 9)})], FACES, fps=5)
    for identity in (False, True):
        options = AnnotateOptions(video=False, progress=False, identity=identity)
        analysis = analyse(probe(clip), options)
        kept, ids = keep_faces(analysis, options)
        faces, embeddings = persons_in_video(kept, analysis.face_chips, ids, options)
        assert sorted(set(faces.person_ids)) == [1, 2] and (faces.person_ids == faces.track_ids).all()
        assert len(analysis.face_chips) >= 2  # chips were gathered either way
        assert sorted(set(embeddings["track_id"])) == ([1, 2] if identity else [])


def test_segments_give_the_persons_of_one_pass(tmp_path):
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline import load

    clip = video_a(tmp_path / "a.mp4")
    persons = {}
    for segments in (1, 2):
        options = AnnotateOptions(out_dir=tmp_path / f"s{segments}", video=False, progress=False, segments=segments)
        rows = load(annotate(clip, options).timeline)
        keyed = rows.assign(t=rows["timestamp_s"].round(1))
        # The same partition of faces into persons (ids may differ with the track numbering).
        groups = keyed.groupby("person_id")["frame_index"].apply(lambda f: tuple(sorted(f)))
        persons[segments] = sorted(groups)
    assert persons[1] == persons[2]


def test_identity_options_are_checked_first(tmp_path):
    clip = video_b(tmp_path / "b.mp4")
    photos = tmp_path / "photos"
    photos.mkdir()
    for args, message in [
        (("annotate", clip, "--people", photos), "--people needs --identity"),
        (("annotate", clip, "--identity", "--people", tmp_path / "nope"), "no such folder"),
        (("batch", tmp_path, "--identity", "--no-persons"), "--identity and --no-persons"),
        (("link", tmp_path), "no stored face embeddings"),
        (("link", tmp_path / "nope"), "no such folder"),
    ]:
        done = run_cli(*args, "--quiet") if args[0] != "link" else run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fer-video: error: ") and message in lines[0], (args, lines)


def _frames(path: Path, size: int = 640 * 360) -> list[bytes]:
    import hashlib
    import subprocess

    from fer_video.video.ffmpeg_binary import ffmpeg_exe

    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return [hashlib.sha256(raw[i : i + size]).digest() for i in range(0, len(raw), size)]


def test_linked_names_are_drawn_in_the_annotated_videos(tmp_path, monkeypatch):
    """The MP4s are drawn while each video knows only its own persons; linking the folder then
    names them. Each MP4 must end up showing what its timeline says: the same frames as a video
    drawn afresh from the linked timeline."""
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "480")
    inputs, people = two_sessions_and_photos(tmp_path)
    out = tmp_path / "out"
    done = run_cli("batch", inputs, "--out", out, "--identity", "--people", people, "--concurrency", "1")
    assert done.returncode == 0, done.stderr
    assert f"{out / 'a.mp4'}: redrawn with the linked persons" in done.stderr, done.stderr

    from fer_video.faces.record import from_timeline_columns
    from fer_video.jobs import AnnotateOptions
    from fer_video.pipeline.render import render
    from fer_video.video import probe

    for video in ("a", "b"):
        rows = pd.read_parquet(out / f"{video}.parquet")
        assert set(rows["person"].dropna()) == {"astronaut", "hopper"}
        fresh = render(probe(inputs / f"{video}.mp4"), from_timeline_columns(rows), AnnotateOptions(out_dir=tmp_path / "fresh", progress=False),
                       video, path=tmp_path / f"fresh-{video}.mp4")
        assert _frames(out / f"{video}.mp4") == _frames(fresh), f"{video}.mp4 does not show the linked persons"

    # Linking again changes nobody: nothing is redrawn.
    again = run_cli("link", out)
    assert again.returncode == 0, again.stderr
    assert "redrawn" not in again.stdout, again.stdout


def test_each_track_is_scored_for_a_chip_once_per_interval(monkeypatch):
    """Gathering chips scores a track's face (sharpness, frontality) once per EVERY_S, not on
    every frame: before, once a track held its best few chips, every later frame was scored."""
    from fer_video.faces import embed
    from fer_video.faces.record import Faces

    scored = []
    real = embed.sharpness
    monkeypatch.setattr(embed, "sharpness", lambda grey, box: scored.append(1) or real(grey, box))
    image = np.zeros((360, 640, 3), np.uint8)
    image[100:260, 200:360] = astronaut_face()[:160, :160]
    gatherer = embed.TrackCandidates(embedder=FaceEmbedder.shared())
    fps, seconds = 24, 4
    face = Faces(np.array([[200.0, 100, 160, 160]]), np.ones(1), np.full((1, 6, 2), np.nan), track_ids=np.zeros(1))
    for i in range(fps * seconds):
        gatherer.add(image, face, i / fps)
    assert len(scored) <= seconds / embed.EVERY_S + 1, len(scored)
    assert gatherer.tracks[0].candidates  # it still found its chips


def test_a_chip_from_the_face_s_surroundings_is_the_chip_from_the_whole_frame():
    """Chips are cut from the face's part of the BGR frame, converted alone (`chip_bgr`): the same
    bytes as from the whole frame converted to RGB, for faces anywhere, cut by the frame's edges
    too; and a face's sharpness is the same from its part as from the grey frame."""
    from fer_video.faces import embed

    embedder = FaceEmbedder.shared()
    face = cv2.resize(astronaut_face(), (150, 150))
    rng = np.random.default_rng(3)
    for x, y in [(200, 100), (-40, 30), (540, 250), (10, -50), (555, -20)]:
        image = (rng.random((360, 640, 3)) * 60).astype(np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + 150, 640), min(y + 150, 360)
        image[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
        box = np.array([x + 30.5, y + 35.25, 90.0, 92.5], np.float32)
        whole = embedder.chip(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), box)
        assert np.array_equal(embedder.chip_bgr(image, box), whole), (x, y)
        assert embed.sharpness(image, box) == embed.sharpness(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), box)


# An edited sequence that cuts between different people framed alike, on the same background (one
# scene: no histogram cut), as interviews and news do: each person for 1 s, six shots, 10 frames/s.
EDIT_ORDER = ["astronaut", "hopper", "cameraman", "astronaut", "hopper", "cameraman"]


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """The edited clip annotated (timeline and MP4): its rows, each with its true person."""
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline import load

    folder = tmp_path_factory.mktemp("edited")
    clip = make_shots_clip(folder / "edit.mp4", [Shot(1.0, {name: (0.5, 0.5, 0, 9)}, scene=0) for name in EDIT_ORDER],
                           {**FACES, "cameraman": cameraman_face()}, width=320, height=240, fps=10, face_width=120)
    result = annotate(clip, AnnotateOptions(out_dir=folder / "out", progress=False))
    rows = load(result.timeline)
    rows["truth"] = [EDIT_ORDER[int(t + 1e-6)] for t in rows["timestamp_s"]]  # shots start on whole seconds
    return clip, result, rows


def test_a_cut_between_people_framed_alike_ends_the_track(edited):
    clip, result, rows = edited
    assert rows["truth"].nunique() == 3 and rows["frame_index"].nunique() >= 55  # every shot's face found
    for column in ("track_id", "person_id"):
        spans = rows.groupby(column)["truth"].unique()
        assert all(len(people) == 1 for people in spans), (column, spans.to_dict())
    # The same person after two cuts is the same person again (the photo, so clearly so).
    assert rows.groupby("truth")["person_id"].nunique().eq(1).all(), rows.groupby("truth")["person_id"].unique()
    assert rows["track_id"].nunique() == len(EDIT_ORDER)


def test_the_annotated_video_of_the_edited_clip_labels_one_person_per_label(edited):
    """What the MP4 writes after each track id names one person, and the MP4 is that drawing."""
    from fer_video.faces.record import from_timeline_columns
    from fer_video.persons.labels import person_labels
    from fer_video.jobs import AnnotateOptions
    from fer_video.pipeline.render import render
    from fer_video.video import probe

    clip, result, rows = edited
    labels = pd.Series(person_labels(rows), index=rows.index)
    drawn = rows.assign(label=rows["track_id"].astype(str) + " " + labels)
    assert drawn.groupby("label")["truth"].nunique().eq(1).all()
    assert (labels != "").all()  # each person spans two tracks here, so each face is labelled
    fresh = render(probe(clip), from_timeline_columns(rows.drop(columns="truth")), AnnotateOptions(out_dir=result.video.parent / "fresh",
                                                                             progress=False), path=result.video.parent / "fresh.mp4")
    assert _frames(result.video, 320 * 240) == _frames(fresh, 320 * 240)


def test_without_persons_the_face_template_alone_ends_the_track_at_such_a_cut(edited, tmp_path):
    """--no-persons computes no embeddings: the face's grey template, far from the last face's
    (0.17-0.21 measured across these people, 0.71 and up for one person), ends the track."""
    from fer_video.faces.embed import FaceEmbedder
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.timeline import load

    clip = edited[0]
    before = FaceEmbedder.shared().embedded
    rows = load(annotate(clip, AnnotateOptions(out_dir=tmp_path, video=False, progress=False, persons=False)).timeline)
    truth = [EDIT_ORDER[int(t + 1e-6)] for t in rows["timestamp_s"]]
    assert rows.assign(truth=truth).groupby("track_id")["truth"].nunique().eq(1).all()
    assert rows["track_id"].nunique() == len(EDIT_ORDER)
    assert FaceEmbedder.shared().embedded == before


def _embed_views(images: list[np.ndarray]) -> list[np.ndarray]:
    """Each image's face embedded as the pipeline does (BlazeFace's box, dlib's chip and ResNet)."""
    detector, embedder = make_detector("blazeface", min_face=20), FaceEmbedder.shared()
    out = []
    for image in images:
        canvas = cv2.copyMakeBorder(image, 80, 80, 80, 80, cv2.BORDER_CONSTANT, value=(90, 110, 120))
        detector.reset()
        faces = detector(canvas)
        assert len(faces)
        biggest = int(np.argmax(faces.boxes[:, 2]))  # a dissolve also shows the fading face's ghost
        out.append(embedder.embed(canvas, faces.boxes[biggest:biggest + 1])[0])
    return out


def test_linking_keeps_different_people_and_tracks_in_doubt_apart():
    """Tracks of three real people, each person's second track after a cut seen in other views
    (darker, turned, half size, brighter, blurred), and a track of a cross-dissolve from the
    astronaut to Hopper (60% astronaut: 0.46 from her, 0.63 from Hopper), not clearly anyone.
    Different people are never one person, a person's two tracks are, and the dissolve stays
    apart. (Before: average linkage at 0.5 put the dissolve with the astronaut.)"""
    from fer_video.persons.stage import person_ids
    from fer_video.samples import face_views

    views = {name: face_views(face) for name, face in {**FACES, "cameraman": cameraman_face()}.items()}
    astronaut, hopper = FACES["astronaut"], cv2.resize(FACES["hopper"], FACES["astronaut"].shape[1::-1])
    tracks = {
        1: ("astronaut", [views["astronaut"][v] for v in ("as is", "mirrored", "cropped")]),
        2: ("hopper", [views["hopper"][v] for v in ("as is", "mirrored", "cropped")]),
        3: ("cameraman", [views["cameraman"][v] for v in ("as is", "mirrored", "cropped")]),
        4: ("astronaut", [views["astronaut"][v] for v in ("darker", "turned left", "half size")]),
        5: ("hopper", [views["hopper"][v] for v in ("brighter", "turned right", "blurred")]),
        6: ("dissolve", [cv2.addWeighted(astronaut, a, hopper, 1 - a, 0) for a in (0.58, 0.6, 0.62)]),
    }
    embeddings = pd.DataFrame([{"track_id": t, "embedding": e} for t, (_, images) in tracks.items()
                               for e in _embed_views(images)])
    rows = pd.DataFrame({"track_id": list(tracks), "frame_index": [10 * t for t in tracks]})  # one after another
    persons = person_ids(rows, embeddings)
    assert persons[1] == persons[4] and persons[2] == persons[5], persons
    assert len({persons[t] for t in (1, 2, 3, 6)}) == 4, persons
