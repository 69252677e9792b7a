"""Median and p95 of repeated runs (nearest-rank p95: with fewer than 20 runs it is the max)."""

from __future__ import annotations

import math
import statistics


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary(values: list[float], *, scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """{"n", "median", "p95", "min", "max"} of `values` multiplied by `scale` (1000 for ms)."""
    if not values:
        return {"n": 0}
    scaled = [v * scale for v in values]
    return {
        "n": len(scaled),
        "median": round(statistics.median(scaled), digits),
        "p95": round(p95(scaled), digits),
        "min": round(min(scaled), digits),
        "max": round(max(scaled), digits),
    }
