"""Minimum-cost assignment for the tracker and the segment stitcher, without SciPy.

`scipy.optimize` costs about 0.7 s of CPU to import in a fresh process, a third of a short
clip's whole command, for one function on matrices of a few rows (the faces in a frame). This is
the Hungarian algorithm with potentials and shortest augmenting paths (Kuhn-Munkres as
Jonker-Volgenant and e-maxx write it): exact, O(n^2 m) for n <= m, each step a NumPy operation
over the columns. `tests/test_assign.py` checks it against `scipy.optimize.linear_sum_assignment`
on thousands of random matrices.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a minimum-cost matching of min(n, m) pairs in the n x m `cost`, rows in
    ascending order, like SciPy's function of the same name (finite costs only)."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"expected a matrix, got an array of shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost matrix has infinite or NaN entries")
    transposed = cost.shape[0] > cost.shape[1]
    a = cost.T if transposed else cost
    n, m = a.shape
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    if n == 1:
        rows, cols = np.zeros(1, np.int64), np.array([int(np.argmin(a[0]))], np.int64)
    else:
        cols_of = _hungarian(a)  # row i -> its column
        rows, cols = np.arange(n, dtype=np.int64), cols_of
    if transposed:
        order = np.argsort(cols, kind="stable")
        return cols[order], rows[order]
    return rows, cols


def _hungarian(a: np.ndarray) -> np.ndarray:
    """The column of each row in a minimum-cost assignment of the n x m matrix `a`, n <= m.
    Index 0 of the column arrays is a virtual column that holds the row being added."""
    n, m = a.shape
    u = np.zeros(n + 1)  # row potentials (1-based rows)
    v = np.zeros(m + 1)  # column potentials
    p = np.zeros(m + 1, np.int64)  # p[j]: the row (1-based) matched to column j, 0 if none
    way = np.zeros(m + 1, np.int64)  # the previous column on the shortest path
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            reduced = a[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.zeros(n, np.int64)
    matched = np.flatnonzero(p[1:]) + 1
    cols[p[matched] - 1] = matched - 1
    return cols
