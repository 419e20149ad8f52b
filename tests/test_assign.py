"""fer_video/faces/assign.py against SciPy's linear_sum_assignment (SciPy stays a test dependency)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_lsa

from fer_video.faces.assign import linear_sum_assignment


def _check(cost: np.ndarray, unique: bool) -> None:
    rows, cols = linear_sum_assignment(cost)
    expected_rows, expected_cols = scipy_lsa(cost)
    assert len(rows) == len(expected_rows) == min(cost.shape)
    assert list(rows) == sorted(rows) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert cost[rows, cols].sum() == pytest.approx(cost[expected_rows, expected_cols].sum(), rel=1e-12, abs=1e-9)
    if unique:  # continuous random costs: the optimum is unique, so is the matching
        assert rows.tolist() == expected_rows.tolist() and cols.tolist() == expected_cols.tolist()


def test_random_matrices_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        n, m = rng.integers(0, 9, size=2)
        _check(rng.random((n, m)), unique=True)


def test_ties_and_forbidden_pairs_cost_the_same_as_scipy():
    """Integer costs (many ties) and the tracker's 1e9 for impossible pairs."""
    rng = np.random.default_rng(1)
    for _ in range(3000):
        n, m = rng.integers(1, 8, size=2)
        cost = rng.integers(0, 4, size=(n, m)).astype(float)
        cost[rng.random((n, m)) < 0.3] = 1e9
        _check(cost, unique=False)
        _check(-rng.integers(0, 20, size=(n, m)).astype(float), unique=False)  # the stitcher's -votes


def test_larger_matrices_match_scipy():
    rng = np.random.default_rng(2)
    for n, m in [(30, 30), (20, 45), (45, 20), (60, 60)]:
        _check(rng.random((n, m)) * 100, unique=True)


def test_bad_input():
    with pytest.raises(ValueError):
        linear_sum_assignment(np.zeros(3))
    with pytest.raises(ValueError):
        linear_sum_assignment(np.array([[np.inf, 1.0]]))
