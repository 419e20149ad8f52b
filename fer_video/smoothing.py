"""Smoothing each track's expression probabilities over time, so labels stop flickering.

Methods, chosen as `name[:seconds]` (e.g. `window:0.5`):

- `none`: raw probabilities.
- `ema:TAU`: exponential moving average with time constant TAU seconds. Causal: it only looks
  back, so it lags changes by about TAU.
- `window:W`: centred moving average over W seconds. No lag, but needs the future.
- `hmm:T`: a hidden Markov model whose state is the true expression, expected to last T seconds;
  forward-backward gives each moment's posterior. It holds a label through brief dips and
  switches cleanly when the evidence stays. Neighbouring frames are nearly the same picture, so
  each frame counts as dt / 0.25 s of an independent observation (at most one); counting every
  frame in full would make the posterior certain of whatever the classifier leans to. Even so,
  the classifier's errors are correlated over time (same face, same light), so `hmm`
  probabilities are a belief, not calibrated confidence; `window` (the default) and `ema`
  average calibrated probabilities and stay calibrated.

All work on timestamps, not frame counts, so they mean the same with `--stride` or a variable
frame rate, and each track is smoothed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# NumPy is imported by the functions that compute: checking a --smoothing spec (before any work,
# and before `batch` prints its first line) should not wait 0.15 s for it.

METHODS = ("none", "ema", "window", "hmm")
DEFAULT_SECONDS = {"none": 0.0, "ema": 0.3, "window": 0.5, "hmm": 1.0}
EVIDENCE_SECONDS = 0.25  # frames closer than this are treated as one observation by `hmm`


@dataclass(frozen=True)
class Smoothing:
    method: str = "window"
    seconds: float = 0.5

    @classmethod
    def parse(cls, spec: str) -> "Smoothing":
        name, _, value = spec.partition(":")
        name = name.strip().lower()
        if name not in METHODS:
            raise ValueError(f"unknown smoothing {spec!r}; use one of {', '.join(METHODS)} (e.g. window:0.5)")
        try:
            seconds = float(value) if value else DEFAULT_SECONDS[name]
        except ValueError:
            raise ValueError(f"smoothing {spec!r}: {value!r} is not a number of seconds") from None
        if seconds < 0 or (name != "none" and seconds == 0):
            raise ValueError(f"smoothing {spec!r}: seconds must be positive")
        return cls(name, seconds)

    def __str__(self) -> str:
        return self.method if self.method == "none" else f"{self.method}:{self.seconds:g}"

    def __call__(self, probs: np.ndarray, times: np.ndarray) -> np.ndarray:
        """One track's (T, K) probabilities at increasing `times` -> smoothed (T, K)."""
        import numpy as np

        probs = np.asarray(probs, np.float64)
        if len(probs) < 2 or self.method == "none":
            return probs.copy()
        if self.method == "ema":
            return ema(probs, times, self.seconds)
        if self.method == "window":
            return centred_window(probs, times, self.seconds)
        return hmm_posterior(probs, times, self.seconds)


def ema(probs: np.ndarray, times: np.ndarray, tau: float) -> np.ndarray:
    import numpy as np

    out = np.empty_like(probs)
    out[0] = probs[0]
    # The weight of the new sample grows with the time since the last, as a continuous EMA.
    alphas = 1.0 - np.exp(-np.diff(times) / tau)
    for i, a in enumerate(alphas, start=1):
        out[i] = out[i - 1] + a * (probs[i] - out[i - 1])
    return out


def centred_window(probs: np.ndarray, times: np.ndarray, width: float) -> np.ndarray:
    import numpy as np

    half = width / 2
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    cumulative = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]


def hmm_posterior(probs: np.ndarray, times: np.ndarray, mean_duration: float) -> np.ndarray:
    """Forward-backward over a 'sticky' chain: between samples dt apart, the expression stays
    with probability exp(-dt / mean_duration), else moves to any other class uniformly.
    The classifier's probabilities serve as the (scaled) emission likelihoods."""
    import numpy as np

    n, k = probs.shape
    dts = np.diff(times)
    weight = np.minimum(1.0, np.append(np.median(dts), dts) / EVIDENCE_SECONDS)
    emissions = np.clip(probs, 1e-6, 1.0) ** weight[:, None]
    stay = np.exp(-np.maximum(dts, 0) / mean_duration)

    def step(belief: np.ndarray, p_stay: float) -> np.ndarray:
        return p_stay * belief + (1 - p_stay) * (belief.sum() - belief) / (k - 1)

    forward = np.empty((n, k))
    belief = emissions[0] / emissions[0].sum()
    forward[0] = belief
    for i in range(1, n):
        belief = step(belief, stay[i - 1]) * emissions[i]
        belief /= belief.sum()
        forward[i] = belief
    backward = np.ones(k) / k
    posterior = np.empty((n, k))
    posterior[-1] = forward[-1]
    for i in range(n - 2, -1, -1):
        backward = step(backward * emissions[i + 1], stay[i])
        backward /= backward.sum()
        p = forward[i] * backward
        posterior[i] = p / p.sum()
    return posterior
