"""Order statistics of repeated measurements: medians and nearest-rank percentiles, nothing fancier."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100): a value that was actually measured."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float], digits: int = 4) -> dict[str, float | int]:
    """n, median, p90, p99, min, max and mean of `values`, rounded to `digits` decimals."""
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def ms(seconds: Sequence[float]) -> list[float]:
    return [value * 1000 for value in seconds]
