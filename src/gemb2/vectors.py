"""Vector arithmetic: L2 normalisation and Matryoshka truncation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError


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


def check_finite(vector: Sequence[float]) -> None:
    if not np.isfinite(np.asarray(vector, dtype=np.float64)).all():
        raise ValueError("vector holds NaN or infinity")
