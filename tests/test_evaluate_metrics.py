"""fer_video/expression/training/evaluate.py's metrics against scikit-learn's (a test dependency only)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import classification_report
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from fer_video.expression.training.evaluate import class_metrics, confusion_matrix


def test_metrics_match_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        k = int(rng.integers(1, 7))  # few classes seen: absent ones, zero divisions
        labels, predicted = rng.integers(0, k, n), rng.integers(0, k + 1, n)
        counts = confusion_matrix(labels, predicted, 7)
        assert counts.tolist() == sk_confusion_matrix(labels, predicted, labels=list(range(7))).tolist()
        present = sorted(set(labels.tolist()) | set(predicted.tolist()))
        ours = class_metrics(counts, present)
        theirs = classification_report(labels, predicted, labels=present, target_names=[str(i) for i in present],
                                       output_dict=True, zero_division=0)
        for i in present:
            for key in ("precision", "recall", "f1-score", "support"):
                assert ours[i][key] == pytest.approx(theirs[str(i)][key], abs=1e-12), (i, key)
        macro = np.mean([m["f1-score"] for m in ours.values()])
        assert macro == pytest.approx(theirs["macro avg"]["f1-score"], abs=1e-12)
