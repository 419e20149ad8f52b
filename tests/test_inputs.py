"""Awkward but valid inputs through the whole pipeline (`fer_video.pipeline.annotate`, in this
process): a shot cut, no faces, no audio, a rotated phone clip, a variable frame rate, odd frame
sides, a still image. Real ffmpeg, detector, model and Parquet; each input is annotated once."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_video.timeline.schema import SCHEMA, SMOOTH
from fer_video.video import probe, read_frames
from helpers import ffmpeg_info, hidden_partials, read_timeline


def frame_count(path) -> int:
    return sum(1 for _ in read_frames(probe(path)))


def schema_fields(schema) -> list:
    return [(f.name, f.type) for f in schema]


# --- shot cut ----------------------------------------------------------------------------------

def test_shot_cut_ends_every_track(cut_clip, annotate_once):
    result, _ = annotate_once(cut_clip)
    rows, _ = read_timeline(result.timeline)
    before = set(rows.loc[rows.frame_index < cut_clip.cut_frame, "track_id"])
    after = set(rows.loc[rows.frame_index >= cut_clip.cut_frame, "track_id"])
    assert before and after, "the face is on screen on both sides of the cut"
    assert before.isdisjoint(after), f"a track crosses the shot cut: {before} / {after}"
    # Within each shot the one face keeps one id.
    assert len(before) == 1 and len(after) == 1
    assert rows.frame_index.nunique() >= 0.95 * cut_clip.frames


# --- no faces ----------------------------------------------------------------------------------

def test_faceless_clip_gives_an_empty_timeline_with_the_full_schema(faceless_clip, annotate_once):
    result, out = annotate_once(faceless_clip)
    table = pq.read_table(result.timeline)
    assert table.num_rows == 0
    assert schema_fields(table.schema) == schema_fields(SCHEMA)
    _, meta = read_timeline(result.timeline)
    assert meta["frame_count"] == faceless_clip.frames
    assert (meta["width"], meta["height"]) == (faceless_clip.width, faceless_clip.height)
    assert result.video.exists() and frame_count(result.video) == faceless_clip.frames
    assert hidden_partials(out) == []


# --- no audio ----------------------------------------------------------------------------------

def test_clip_without_audio_gives_mp4_without_audio(silent_clip, annotate_once):
    assert "Audio:" not in ffmpeg_info(silent_clip.path)
    result, _ = annotate_once(silent_clip)
    text = ffmpeg_info(result.video)
    assert "Video: h264" in text
    assert "Audio:" not in text
    info = probe(result.video)
    assert not info.has_audio
    assert frame_count(result.video) == silent_clip.frames
    _, meta = read_timeline(result.timeline)
    assert meta["has_audio"] is False


# --- rotation ----------------------------------------------------------------------------------

def test_rotated_clip_is_probed_upright(rotated_clip):
    assert "rotation of" in ffmpeg_info(rotated_clip.path)
    info = probe(rotated_clip.path)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (rotated_clip.width, rotated_clip.height)
    assert (info.width, info.height) == tuple(reversed(rotated_clip.stored_size))


def test_rotated_clip_frames_are_decoded_upright(rotated_clip):
    frames = [f.image for f in read_frames(probe(rotated_clip.path))][::10]
    assert len(frames) == len(rotated_clip.upright)
    for got, want in zip(frames, rotated_clip.upright):
        assert got.shape == want.shape
        # Compression costs a few grey levels; a turned or mirrored picture differs by ~50.
        assert np.abs(got.astype(int) - want).mean() < 8


def test_rotated_clip_faces_found_and_output_upright(rotated_clip, annotate_once):
    result, _ = annotate_once(rotated_clip)
    rows, meta = read_timeline(result.timeline)
    assert rows.frame_index.nunique() >= 0.95 * rotated_clip.frames
    assert rows.track_id.nunique() == 1
    assert (meta["width"], meta["height"]) == (rotated_clip.width, rotated_clip.height)
    assert meta["rotation"] in (90, 270)
    out = probe(result.video)
    assert (out.width, out.height, out.rotation) == (rotated_clip.width, rotated_clip.height, 0)
    assert frame_count(result.video) == rotated_clip.frames
    # Boxes are in upright pixels: the face is in the left half of a landscape frame.
    assert (rows.x + rows.w / 2).between(0, rotated_clip.width * 0.6).all()


# --- variable frame rate -----------------------------------------------------------------------

def test_vfr_clip_really_has_irregular_timestamps(vfr_clip):
    times = np.array([f.time for f in read_frames(probe(vfr_clip.path))])
    assert len(times) == vfr_clip.frames
    assert len(np.unique(np.round(np.diff(times), 3))) >= 2


def test_vfr_timestamps_are_the_streams_own(vfr_clip, annotate_once):
    result, _ = annotate_once(vfr_clip)
    rows, meta = read_timeline(result.timeline)
    assert meta["frame_count"] == vfr_clip.frames
    per_frame = rows.groupby("frame_index").timestamp_s.first()
    assert len(per_frame) >= 0.95 * vfr_clip.frames
    expected = np.array(vfr_clip.kept) / vfr_clip.fps
    np.testing.assert_allclose(per_frame.to_numpy(), expected[per_frame.index.to_numpy()], atol=1e-3)
    assert frame_count(result.video) == vfr_clip.frames


# --- odd frame size ----------------------------------------------------------------------------

def test_odd_sized_clip_is_padded_to_even_in_the_mp4(odd_clip, annotate_once):
    result, _ = annotate_once(odd_clip)
    rows, meta = read_timeline(result.timeline)
    assert (meta["width"], meta["height"]) == (odd_clip.width, odd_clip.height)
    assert len(rows) > 0
    out = probe(result.video)
    assert (out.width, out.height) == (odd_clip.width + odd_clip.width % 2, odd_clip.height + odd_clip.height % 2)
    assert "yuv420p" in ffmpeg_info(result.video)
    assert frame_count(result.video) == odd_clip.frames
    # Boxes stay inside the source picture.
    assert ((rows.x >= 0) & (rows.x + rows.w <= odd_clip.width + 0.5)).all()
    assert ((rows.y >= 0) & (rows.y + rows.h <= odd_clip.height + 0.5)).all()


# --- still image -------------------------------------------------------------------------------

def test_still_image_gives_annotated_image_and_one_frame_timeline(still_image, annotate_once):
    result, out = annotate_once(still_image)
    assert result.video is None
    assert result.image == out / "still.jpg.annotated.jpg"  # an image keeps its suffix in its name
    image = cv2.imread(str(result.image))
    assert image is not None and image.shape == (still_image.height, still_image.width, 3)
    source = cv2.imread(str(still_image.path))
    assert np.abs(image.astype(int) - source).mean() > 0.5, "boxes and labels were drawn"
    rows, meta = read_timeline(result.timeline)
    assert len(rows) == 2
    assert (rows.frame_index == 0).all() and (rows.timestamp_s == 0).all()
    assert rows.track_id.nunique() == 2
    assert meta["frame_count"] == 1
    np.testing.assert_allclose(rows[SMOOTH].sum(axis=1), 1, atol=1e-4)
    assert not list(out.glob("*.mp4"))


# --- broken inputs, in process ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "empty", "text", "moov_cut", "faststart_cut", "audio_only"])
def test_bad_input_raises_input_error_naming_it(kind, bad_inputs, tmp_path):
    from fer_video.errors import InputError
    from fer_video.pipeline import AnnotateOptions, annotate

    path = bad_inputs[kind]
    with pytest.raises(InputError) as caught:
        annotate(path, AnnotateOptions(out_dir=tmp_path, progress=False))
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
