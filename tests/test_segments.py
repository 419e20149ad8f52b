"""A long video split into time segments, analysed separately and stitched, gives the timeline
of a single pass within the documented tolerance: the same rows and track ids, boxes within
2 pixels, per-frame probabilities within 0.1, labels on >= 99% of rows the same. (The detector's
window state takes a few frames after a seam to settle, and LiteRT's threaded kernels are not
bit-exact, so a face's box can differ by about a pixel there.)"""

from __future__ import annotations

import numpy as np
import pytest

from fer_video.pipeline import AnnotateOptions, analyse, analyse_segmented, plan_segments, probe, smooth
from fer_video.samples import make_clip

BOX_TOLERANCE_PX = 2.0
PROBABILITY_TOLERANCE = 0.1


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """10 s, two faces, a shot cut at 6 s (so track ids must also restart across a seam)."""
    path = tmp_path_factory.mktemp("segments") / "cut.mp4"
    return probe(make_clip(path, seconds=10.0, width=480, height=270, fps=20, cut_at=6.0))


def test_plan_covers_every_frame_once_on_the_stride_grid(cut_clip):
    options = AnnotateOptions(progress=False, segments=4, stride=3)
    ranges = plan_segments(cut_clip, options)
    assert len(ranges) == 4
    assert ranges[0][0] == 0 and ranges[-1][1] is None
    for (first, last), (next_first, _) in zip(ranges, ranges[1:]):
        assert first % 3 == 0 and next_first % 3 == 0
        assert next_first <= last  # overlap, so tracks can be matched across the seam
    assert plan_segments(cut_clip, AnnotateOptions(progress=False, segments=1)) == [(0, None)]


@pytest.mark.parametrize("segments,stride", [(3, 1), (4, 2)])
def test_segmented_equals_single_pass(cut_clip, segments, stride):
    options = AnnotateOptions(progress=False, segments=segments, stride=stride)
    single = smooth(analyse(cut_clip, options).rows, options.smoothing)
    joined = smooth(analyse_segmented(cut_clip, options).rows, options.smoothing)

    assert single["track_id"].nunique() == 4  # two faces before the cut, two new ones after
    merged = single.merge(joined, on=["frame_index", "track_id"], how="outer", suffixes=("", "_seg"),
                          indicator=True)
    assert (merged["_merge"] == "both").all(), "segmented run has other (frame, track) rows"
    boxes = merged[["x", "y", "w", "h"]].to_numpy() - merged[["x_seg", "y_seg", "w_seg", "h_seg"]].to_numpy()
    assert np.abs(boxes).max() <= BOX_TOLERANCE_PX
    raw = [c for c in single.columns if c.startswith("raw_")]
    probs = merged[raw].to_numpy() - merged[[f"{c}_seg" for c in raw]].to_numpy()
    assert np.abs(probs).max() <= PROBABILITY_TOLERANCE
    assert (np.abs(probs).max(axis=1) < 1e-6).mean() >= 0.85  # most rows are bit-identical
    assert (merged["label"].astype(str) == merged["label_seg"].astype(str)).mean() >= 0.99
