"""The annotated video drawn during the analysis (`fer_video.pipeline.live`): byte for byte the
MP4 the render stage draws from the whole video's faces, and drawn again by the render stage
where the whole video changes what a frame shows."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest

from fer_video.faces.record import N_EMOTIONS, N_KEYPOINTS, Faces
from fer_video.persons.labels import PersonLabels
from fer_video.pipeline import AnnotateOptions, analyse, keep_faces, probe, render, smooth
from fer_video.pipeline.live import LiveVideo, _Track
from fer_video.persons.stage import persons_in_video


def _both(info, tmp_path, **settings):
    """The video drawn live (kept if it matches) and drawn by the render stage alone."""
    out = {}
    matched = gave_up = None
    for draw in (True, False):
        options = AnnotateOptions(out_dir=tmp_path / ("live" if draw else "render"), progress=False, **settings)
        analysis = analyse(info, options, "clip", draw=draw)
        kept, ids = keep_faces(analysis, options)
        kept, _ = persons_in_video(kept, analysis.face_chips, ids, options)
        faces = smooth(kept, options.smoothing)
        if draw:
            assert analysis.live is not None
            matched = analysis.live.matches(faces, PersonLabels(faces)(faces))
            gave_up = analysis.live.gave_up
        out[draw] = render(info, faces, options, "clip", live=analysis.live)
    return out[True], out[False], matched, gave_up


def test_the_video_drawn_live_is_the_one_the_render_stage_draws(tmp_path):
    from fer_video.samples import make_clip

    info = probe(make_clip(tmp_path / "clip.mp4", seconds=2.0, width=480, height=270, fps=30))
    live, rendered, matched, gave_up = _both(info, tmp_path)
    assert matched and not gave_up, "the live drawing should match on a clip of two steady people"
    assert filecmp.cmp(live, rendered, shallow=False)
    assert not list((tmp_path / "live").glob(".*.part"))


def test_a_person_found_across_a_cut_is_drawn_again_by_the_render_stage(tmp_path):
    """Two shots of the same two people: person ids join tracks across the cut, which only the
    whole video shows: the live drawing gives up as soon as a track that never met an earlier
    one is confirmed, and the render stage's drawing is written."""
    from fer_video.samples import Shot, astronaut_face, hopper_face, make_shots_clip

    faces = {"astronaut": astronaut_face(), "hopper": hopper_face()}
    clip = make_shots_clip(tmp_path / "cut.mp4", [
        Shot(1.2, {"astronaut": (0.3, 0.5, 0, 9), "hopper": (0.72, 0.5, 0, 9)}, scene=0),
        Shot(1.2, {"hopper": (0.3, 0.5, 0, 9), "astronaut": (0.72, 0.5, 0, 9)}, scene=1)], faces, fps=15)
    live, rendered, matched, gave_up = _both(probe(clip), tmp_path)
    assert gave_up and not matched
    assert filecmp.cmp(live, rendered, shallow=False)
    assert not list((tmp_path / "live").glob(".*.part"))


def test_smoothed_values_are_the_smooth_stages_bit_for_bit():
    """The window over a track's prefix sums, at each face, equals `smooth` over the whole track."""
    rng = np.random.default_rng(3)
    n = 200
    times = np.cumsum(rng.uniform(0.02, 0.05, n))
    probs = rng.dirichlet(np.ones(N_EMOTIONS), n).astype(np.float32)
    faces = Faces(np.ones((n, 4)), np.ones(n), np.zeros((n, N_KEYPOINTS, 2)), track_ids=np.ones(n, np.int64),
                  probs=probs, frame_index=np.arange(n), timestamp_s=times)
    expected = smooth(faces, "window:0.5").smoothed

    live = LiveVideo(sink=None, options=AnnotateOptions(smoothing="window:0.5"))
    live.tracks[1] = _Track(first=0, old_id=1)
    live.classified(faces)
    got = np.stack([live._smoothed(live.tracks[1], t) for t in times])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("settings", [dict(stride=2), dict(segments=2), dict(smoothing="hmm"), dict(video=False)])
def test_live_drawing_is_only_where_it_computes_what_the_render_stage_draws(settings, tmp_path):
    from fer_video.pipeline.live import can_draw_live
    from fer_video.samples import make_clip

    info = probe(make_clip(tmp_path / "c.mp4", seconds=0.3, width=160, height=90, fps=10))
    assert can_draw_live(info, AnnotateOptions())
    assert not can_draw_live(info, AnnotateOptions(**settings))


def test_without_person_linking_a_cut_does_not_stop_the_live_drawing(tmp_path):
    """With --no-persons every track is its own person: tracks that follow each other change no
    label, and the video drawn live is kept."""
    from fer_video.samples import Shot, astronaut_face, hopper_face, make_shots_clip

    faces = {"astronaut": astronaut_face(), "hopper": hopper_face()}
    clip = make_shots_clip(tmp_path / "cut.mp4", [
        Shot(1.2, {"astronaut": (0.3, 0.5, 0, 9), "hopper": (0.72, 0.5, 0, 9)}, scene=0),
        Shot(1.2, {"hopper": (0.3, 0.5, 0, 9), "astronaut": (0.72, 0.5, 0, 9)}, scene=1)], faces, fps=15)
    live, rendered, matched, gave_up = _both(probe(clip), tmp_path, persons=False)
    assert matched and not gave_up
    assert filecmp.cmp(live, rendered, shallow=False)


class _Discard:
    """A sink that takes frames and writes nothing: the test looks at what LiveVideo decides."""

    def append(self, faces, frame=None):
        pass

    def close(self):
        pass

    def discard(self):
        pass


def test_a_long_stream_matches_the_whole_videos_faces_with_memory_kept_short():
    """40 s at 30 fps of two faces and a third that comes and goes, classified every other frame
    and a few frames late: what LiveVideo draws digests equal to keep + smooth over the whole
    video, while each track keeps only its recent faces."""
    from fer_video.expression.schedule import fill_between
    from fer_video.pipeline.keep import drop_false_tracks
    from fer_video.video.read import Frame

    rng = np.random.default_rng(7)
    options = AnnotateOptions(persons=False)
    live = LiveVideo(_Discard(), options)
    frames, batches, all_faces = 1200, [], []
    for i in range(frames):
        tracks = [1, 2] + ([5] if 500 <= i < 700 else []) + ([9] if i in (800, 801) else [])  # 9: a flicker
        n = len(tracks)
        probs = rng.dirichlet(np.ones(N_EMOTIONS), n).astype(np.float32)
        new = [i == 0 or (t == 5 and i == 500) or (t == 9 and i == 800) for t in tracks]
        probs[[(i % 2 == 1) and not fresh for fresh in new]] = np.nan  # the schedule's skipped faces
        faces = Faces(rng.uniform(10, 50, (n, 4)), np.full(n, 0.9), np.zeros((n, N_KEYPOINTS, 2)),
                      track_ids=tracks).in_frame(i, i / 30)
        live.push(Frame(i, i / 30, np.zeros((6, 4), np.uint8)), faces)
        batches.append(faces.with_(probs=probs))
        if len(batches) == 8:  # a batch classified a few frames behind the analysis
            live.classified(Faces.concat(batches))
            all_faces.append(Faces.concat(batches))
            batches = []
    if batches:
        live.classified(Faces.concat(batches))
        all_faces.append(Faces.concat(batches))
    live.finish()
    kept, _ = drop_false_tracks(fill_between(Faces.concat(all_faces)), options.min_score, 3)
    final = smooth(kept, options.smoothing)
    assert live.forced == 0 and live.frames == frames
    assert live.matches(final, [""] * len(final))
    assert 9 not in live.number  # the flicker was never a face
    assert max(len(t.times) for t in live.tracks.values()) < 120  # not 1200: old faces forgotten


def test_frames_handed_to_the_drawing_thread_stay_few_when_many_turn_final_at_once():
    """Classified 2 s late, 60 frames turn final at once: they go to the drawing thread a few at a
    time, and the analysis waits on it rather than going on decoding while all 60 wait (the peak
    memory of a 1080p video grew by a fifth when they went as one task)."""
    import time

    from fer_video.video.read import Frame

    class Slow(_Discard):
        def append(self, faces, frame=None):
            time.sleep(0.002)

    live = LiveVideo(Slow(), AnnotateOptions(persons=False))
    sizes, pending = [], []
    real = live._append
    live._append = lambda group: sizes.append(len(group)) or real(group)
    rng, batch = np.random.default_rng(1), []
    for i in range(240):
        faces = Faces(rng.uniform(10, 50, (1, 4)), np.full(1, 0.9), np.zeros((1, N_KEYPOINTS, 2)),
                      track_ids=[1]).in_frame(i, i / 30)
        live.push(Frame(i, i / 30, np.zeros((6, 4), np.uint8)), faces)
        pending.append(len(live._drawing))
        batch.append(faces.with_(probs=rng.dirichlet(np.ones(N_EMOTIONS), 1).astype(np.float32)))
        if len(batch) == 60:
            live.classified(Faces.concat(batch))
            pending.append(len(live._drawing))
            batch = []
    live.finish()
    live.close()
    assert live.frames == 240 and sum(sizes) == 240
    assert max(sizes) * max(pending) <= 8, (sizes, pending)  # frames handed over and not yet drawn


def test_drawing_live_leaves_the_encoders_cores_to_it(tmp_path, monkeypatch):
    """While the MP4 is drawn and encoded beside the analysis, the models' invokes run on the
    cores the codecs leave (`model_threads(beside_encoder=True)`); without it, on every core.
    The thread count changes no number: the faces are the same to the bit."""
    import os

    import fer_video.expression.classify as classify
    import fer_video.faces.detectors.blazeface as blazeface
    from fer_video.pipeline import model_cache
    from fer_video.samples import make_clip

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})  # four cores, the codecs' two
    monkeypatch.setattr(model_cache, "_models", {})
    threads = []
    for module in (classify, blazeface):  # the real interpreters, their thread counts noted
        monkeypatch.setattr(module, "new_interpreter", lambda *a, _real=module.new_interpreter, **k:
                            threads.append(k["num_threads"]) or _real(*a, **k))
    info = probe(make_clip(tmp_path / "clip.mp4", seconds=1.0, width=480, height=270, fps=30))
    faces = {}
    for draw in (True, False):
        threads.clear()
        options = AnnotateOptions(out_dir=tmp_path / str(draw), progress=False)
        analysis = analyse(info, options, "clip", draw=draw)
        assert (analysis.live is not None) == draw
        if draw:
            analysis.live.discard()
        assert threads and set(threads) == {2 if draw else 4}
        faces[draw] = analysis.faces
    assert len(faces[True]) > 0
    for column in ("boxes", "scores", "keypoints", "probs", "track_ids"):
        np.testing.assert_array_equal(getattr(faces[True], column), getattr(faces[False], column))
