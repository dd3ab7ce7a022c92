"""Vector arithmetic: L2 normalisation and Matryoshka truncation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gemb2.errors import ConfigError


def normalize(vector: Sequence[float]) -> list[float]:
    """Unit length; idempotent, so it is safe to apply to already normalised output."""
    arr = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(arr))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("cannot normalise a zero or non-finite vector")
    return (arr / norm).tolist()  # numpy, not a Python loop: this runs once per vector


def truncate(vector: Sequence[float], dimensions: int, *, renormalize: bool = True) -> list[float]:
    """The first ``dimensions`` values of a Matryoshka vector, re-normalised: a valid
    smaller vector of the same model."""
    if not 1 <= dimensions <= len(vector):
        raise ConfigError(f"cannot truncate a {len(vector)}-d vector to {dimensions}")
    head = list(vector[:dimensions])
    return normalize(head) if renormalize else [float(x) for x in head]


class BadVectorError(ValueError):
    """Rows of an answer that cannot be used: ``row`` is the bad one's position in the
    answer, None when the rows as a whole are not one matrix of numbers; ``reason`` says
    what is wrong."""

    def __init__(self, row: int | None, reason: str) -> None:
        self.row = row
        self.reason = reason
        super().__init__(f"row {row}: {reason}" if row is not None else reason)


def checked_rows(rows: Sequence[Sequence[float]], *, normalize: bool) -> list[list[float]]:
    """Vectors from the service, refused if any is non-finite (or zero, when normalising),
    normalised row by row so a vector comes out the same whatever batch it arrived in.

    Raises ``BadVectorError`` naming the row, or with ``row`` None when the rows are not
    one matrix of numbers."""
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadVectorError(
            None, "vectors of different lengths, or values that are not numbers"
        ) from None
    if arr.ndim != 2:
        raise BadVectorError(None, "vectors of different lengths")
    # a reduction along each contiguous row gives the same norm whatever rows sit beside it
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
        norms = np.linalg.norm(arr, axis=1)
    bad = ~np.isfinite(norms) | (normalize & (norms == 0.0))
    if bad.any():
        raise BadVectorError(int(np.argmax(bad)), "vector is zero or holds NaN or infinity")
    out: list[list[float]] = (arr / norms[:, None] if normalize else arr).tolist()
    return out
