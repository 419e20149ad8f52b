"""Fitting the calibration on validation faces: temperature scaling (Guo et al., 2017), the
per-class logit bias, and expected calibration error."""

from __future__ import annotations

import numpy as np

from fer_video.expression.classify import softmax  # applying the calibration is the classifier's


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = softmax(logits, temperature)
    return float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises validation NLL; searched in log space over [0.05, 20]."""
    from scipy.optimize import minimize_scalar  # here: the pipeline imports this module, not SciPy

    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def recalls(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Per-class recall; a class absent from `labels` counts as fully recalled."""
    hits = np.bincount(labels[predicted == labels], minlength=classes)
    support = np.bincount(labels, minlength=classes)
    return np.where(support > 0, hits / np.maximum(support, 1), 1.0)


def fit_logit_bias(logits: np.ndarray, labels: np.ndarray, recall_floor: float = 0.5,
                   steps: np.ndarray | None = None, passes: int = 4, miss_cost: float = 3.0,
                   floor_on: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per-class offsets added to the logits that maximise validation accuracy minus a penalty
    for every class whose recall is below `recall_floor` (FER2013's disgust is 1.5% of faces:
    an unbiased argmax rarely names it). A face missing from a class's floor costs `miss_cost`
    errors: a rare class is lifted, but not at any price in accuracy. Coordinate ascent over a
    grid, class by class.

    `floor_on` = (logits, labels) of the faces whose recall the floor is about, when those are
    not the faces accuracy is counted on (FER+: accuracy against the crowd's majority on every
    face, recall on the clear faces where FER2013's label agrees with it)."""
    logits = np.asarray(logits, np.float64)
    classes = logits.shape[1]
    steps = np.linspace(-2.0, 2.0, 81) if steps is None else steps
    bias = np.zeros(classes)
    floor_logits, floor_labels = (logits, labels) if floor_on is None else (
        np.asarray(floor_on[0], np.float64), floor_on[1])
    support = np.bincount(floor_labels, minlength=classes)

    def score(b):
        predicted = (logits + b).argmax(axis=1)
        floor_predicted = predicted if floor_on is None else (floor_logits + b).argmax(axis=1)
        missing = np.clip(recall_floor - recalls(floor_predicted, floor_labels, classes), 0, None) * support
        return (predicted == labels).mean() - miss_cost * missing.sum() / len(labels)

    best = score(bias)
    for _ in range(passes):
        improved = False
        for c in range(classes):
            for value in steps:
                trial = bias.copy()
                trial[c] = value
                s = score(trial)
                if s > best + 1e-9:
                    best, bias, improved = s, trial, True
        if not improved:
            break
    return bias - bias.mean()  # softmax does not see a common offset; keep the numbers small
