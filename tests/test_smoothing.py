"""Per-track smoothing of expression probabilities over time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_video.expression.labels import EMOTIONS
from fer_video.smoothing import Smoothing

K = len(EMOTIONS)
FPS = 25
SPECS = ["none", "ema:0.3", "window:0.5", "hmm:1"]


def label_changes(probs: np.ndarray) -> int:
    labels = probs.argmax(axis=1)
    return int((labels[1:] != labels[:-1]).sum())


def noisy_sequence(seed: int = 0, seconds: float = 6.0):
    """The true expression is happy for the first half, sad after; the classifier's probabilities
    lean to the truth but are noisy enough that the raw argmax flickers."""
    rng = np.random.default_rng(seed)
    times = np.arange(0, seconds, 1 / FPS)
    truth = np.where(times < seconds / 2, EMOTIONS.index("happy"), EMOTIONS.index("sad"))
    probs = rng.dirichlet(np.ones(K) * 0.7, size=len(times))
    probs[np.arange(len(times)), truth] += 0.35
    return times, truth, probs / probs.sum(axis=1, keepdims=True)


def step_sequence(t0: float = 2.0, seconds: float = 4.0):
    """Clean probabilities: neutral before t0, surprise from t0 on."""
    times = np.arange(0, seconds, 1 / FPS)
    probs = np.full((len(times), K), 0.1 / (K - 1))
    probs[times < t0, EMOTIONS.index("neutral")] = 0.9
    probs[times >= t0, EMOTIONS.index("surprise")] = 0.9
    return times, probs


def crossing_time(times, smoothed) -> float:
    """First time surprise outweighs neutral."""
    ahead = smoothed[:, EMOTIONS.index("surprise")] > smoothed[:, EMOTIONS.index("neutral")]
    return float(times[np.argmax(ahead)])


@pytest.mark.parametrize("spec", SPECS)
def test_every_method_returns_probability_rows(spec):
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.01, 0.12, 80))  # irregular, as with a variable frame rate
    probs = rng.dirichlet(np.ones(K), size=80)
    out = Smoothing.parse(spec)(probs, times)
    assert out.shape == probs.shape
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1 + 1e-9).all()
    np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-9)


@pytest.mark.parametrize("spec", SPECS)
def test_short_tracks(spec):
    smoother = Smoothing.parse(spec)
    one = np.eye(K)[[3]]
    np.testing.assert_allclose(smoother(one, np.array([0.0])), one)
    two = np.eye(K)[[3, 4]] * 0.6 + 0.4 / K
    np.testing.assert_allclose(smoother(two, np.array([0.0, 0.04])).sum(axis=1), 1, atol=1e-9)


@pytest.mark.parametrize("spec", ["ema:0.3", "window:0.5", "hmm:1"])
def test_smoothing_reduces_flicker_and_follows_the_truth(spec):
    times, truth, probs = noisy_sequence()
    raw_changes = label_changes(probs)
    assert raw_changes >= 20, "the test sequence must flicker"
    smoothed = Smoothing.parse(spec)(probs, times)
    assert label_changes(smoothed) <= raw_changes / 4
    assert (smoothed.argmax(axis=1) == truth).mean() >= 0.9
    assert label_changes(Smoothing.parse("none")(probs, times)) == raw_changes


def test_hmm_switches_once_on_a_single_change():
    times, _, probs = noisy_sequence(seed=2)
    assert label_changes(Smoothing.parse("hmm:1")(probs, times)) == 1


def test_window_is_centred_so_it_does_not_lag():
    times, probs = step_sequence(t0=2.0)
    window = Smoothing.parse("window:0.5")(probs, times)
    assert abs(crossing_time(times, window) - 2.0) <= 1 / FPS + 1e-9
    # Time-symmetric: reversing time and smoothing gives the smoothed sequence reversed.
    flipped = Smoothing.parse("window:0.5")(probs[::-1], times[-1] - times[::-1])
    np.testing.assert_allclose(flipped[::-1], window, atol=1e-12)
    # The causal EMA, by contrast, lags by about tau * ln 2.
    ema = Smoothing.parse("ema:0.3")(probs, times)
    assert crossing_time(times, ema) - 2.0 >= 0.15


def test_window_means_seconds_at_any_sampling():
    """The same signal sampled at 25 fps and every 3rd frame smooths to about the same values."""
    times, _, probs = noisy_sequence(seed=3)
    smoother = Smoothing.parse("window:1")
    full = smoother(probs, times)
    strided = smoother(probs[::3], times[::3])
    assert np.abs(full[::3] - strided).mean() < 0.03


@pytest.mark.parametrize("spec, method, seconds", [
    ("none", "none", 0.0), ("ema", "ema", 0.3), ("window", "window", 0.5), ("hmm", "hmm", 1.0),
    ("window:0.25", "window", 0.25), (" EMA:2 ", "ema", 2.0), ("Hmm:1.5", "hmm", 1.5),
])
def test_parse(spec, method, seconds):
    parsed = Smoothing.parse(spec)
    assert (parsed.method, parsed.seconds) == (method, pytest.approx(seconds))
    assert Smoothing.parse(str(parsed)) == parsed


@pytest.mark.parametrize("spec", ["", "median", "median:3", "window:abc", "window:-1", "ema:0", "hmm:0",
                                  "ema:1s", "none:-1"])
def test_parse_errors_raise_value_error(spec):
    with pytest.raises(ValueError):
        Smoothing.parse(spec)


def test_bad_smoothing_is_refused_by_annotate_options():
    from fer_video.pipeline import AnnotateOptions

    with pytest.raises(ValueError, match="smoothing"):
        AnnotateOptions(smoothing="median:3")


def _faces(frame_index, track_ids, probs, times):
    from fer_video.faces.record import Faces

    n = len(frame_index)
    return Faces(np.zeros((n, 4)), np.arange(n, dtype=np.float32), np.zeros((n, 6, 2)), track_ids=track_ids,
                 probs=probs, frame_index=frame_index, timestamp_s=times)


def test_pipeline_smooths_each_track_on_its_own():
    """Two interleaved tracks with opposite, steady expressions: smoothing must not mix them."""
    from fer_video.pipeline import smooth

    n = 20
    frames, tracks = np.repeat(np.arange(n), 2), np.tile([1, 2], n)
    probs = np.full((2 * n, K), 0.02)
    probs[tracks == 1, EMOTIONS.index("happy")] = 0.88
    probs[tracks == 2, EMOTIONS.index("angry")] = 0.88
    out = smooth(_faces(frames, tracks, probs, frames / FPS), "window:0.5")
    assert (out.labels[out.track_ids == 1] == "happy").all()
    assert (out.labels[out.track_ids == 2] == "angry").all()
    np.testing.assert_allclose(out.smoothed, probs, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
def test_pipeline_smooth_orders_faces_by_frame_then_track(spec):
    """Faces in any order come back in (frame_index, track_id) order, ties in their own order,
    each track smoothed over its own faces by time; label and confidence follow from that."""
    from fer_video.pipeline import smooth

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 30, 90)
    tracks = rng.integers(1, 5, 90)
    probs = rng.dirichlet(np.ones(K), 90).astype(np.float32)
    faces = _faces(frames, tracks, probs, frames / FPS + rng.uniform(0, 1e-3, 90))
    out = smooth(faces, spec)

    # The expected result, worked out independently: sorted with pandas, smoothed track by track.
    table = pd.DataFrame({"frame_index": frames, "track_id": tracks, "face": np.arange(90)})
    table = table.sort_values(["frame_index", "track_id"], kind="stable").reset_index(drop=True)
    np.testing.assert_array_equal(out.scores, table["face"].to_numpy(np.float32))  # each face, in that order
    expected = np.zeros((90, K), np.float32)
    smoother = Smoothing.parse(spec)
    for track in np.unique(tracks):
        at = np.flatnonzero(table["track_id"].to_numpy() == track)
        original = table["face"].to_numpy()[at]
        expected[at] = smoother(probs[original].astype(np.float64), faces.timestamp_s[original])
    np.testing.assert_array_equal(out.smoothed, expected)
    np.testing.assert_array_equal(out.probs, probs[table["face"].to_numpy()])
    best = expected.argmax(axis=1)
    assert out.labels.tolist() == [EMOTIONS[b] for b in best]
    np.testing.assert_array_equal(out.confidence, expected[np.arange(90), best])
