"""How the errors of one compared output spread against its bound, for the HTML report's histograms.

Each element's error is measured in units of its own bound, atol + rtol * |expected| (what
numpy.allclose and parity apply): a ratio <= 1 is within tolerance. Elements equal bit for bit
are counted apart. The bins are decades of that ratio, so the picture reads the same for every
dtype and tolerance.
"""
from __future__ import annotations

from typing import Any

import numpy as np

RATIO_EDGES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


def error_histogram(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float | np.ndarray) -> dict[str, Any]:
    """{"equal": n, "edges": RATIO_EDGES, "counts": [...]} over finite elements; counts has one bin
    more than edges: (0, e0], (e0, e1], ..., (e_last, inf). `atol` may be per element (an output
    judged per magnitude class)."""
    expected = np.asarray(expected).ravel()
    actual = np.asarray(actual).ravel()
    equal = expected == actual
    allowed = np.broadcast_to(np.asarray(atol, np.float64), expected.shape)[~equal]
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = np.abs(actual[~equal] - expected[~equal]) / (allowed + rtol * np.abs(expected[~equal]))
    ratio = ratio[np.isfinite(ratio)]
    bins = np.searchsorted(np.asarray(RATIO_EDGES), ratio, side="left")
    counts = np.bincount(bins, minlength=len(RATIO_EDGES) + 1)
    return {"equal": int(equal.sum()), "edges": list(RATIO_EDGES), "counts": [int(c) for c in counts]}
