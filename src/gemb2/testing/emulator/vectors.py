"""Deterministic stand-in vectors with the structure tests rely on.

Not Gemini's vectors: a bag of word features, each hashed to a fixed random
direction, so that

* the same content always gives the same vector,
* texts sharing words are closer than unrelated texts,
* a query and a document about the same thing are close (prefixes are stripped),
* media are found by the text they carry (captions, PDF text, tags),
* the vector is Matryoshka-shaped: every direction is scaled by ``1 / (1 + i / 256)``
  along the dimensions, so the leading dimensions carry most of the energy and a
  truncated, re-normalised vector ranks neighbours nearly as the full one does.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from typing import Literal

import numpy as np
import numpy.typing as npt

FULL_DIM = 3072
DECAY_DIMS = 256.0
SCALE: npt.NDArray[np.float32] = (1.0 / (1.0 + np.arange(FULL_DIM) / DECAY_DIMS)).astype(np.float32)

MEDIA_BYTES_WEIGHT = 0.3  # the file's own identity, small next to the text it carries
MODALITY_WEIGHT = 0.15  # a shared direction per modality: a small modality gap, as real models have
IDENTITY_WEIGHT = 0.1  # exact-content component: different inputs never share a vector

Vector = npt.NDArray[np.float32]

_STOPWORDS_TEXT = """a an and are as at be but by for from has have i in into is it its of on or
that the their there these this to was were will with what which who how when where why do does
did not no yes can could should would about over under than then so such"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

_WORD = re.compile(r"\w+", re.UNICODE)
_QUERY = re.compile(r"\A\s*task:\s*(?P<task>[^|\n]*?)\s*\|\s*query:\s?(?P<text>.*)\Z", re.S)
_DOC = re.compile(r"\A\s*title:\s*(?P<title>[^|\n]*?)\s*\|\s*text:\s?(?P<text>.*)\Z", re.S)


@dataclass(frozen=True)
class PartFeatures:
    """What one part contributes: its text features, or a key for bytes / a URI, or both."""

    kind: Literal["text", "media", "uri"]
    text: str = ""
    key: str = ""
    modality: str = "text"


def strip_prefix(text: str) -> tuple[str, str | None]:
    """Undo the client-side task prefix of gemini-embedding-2: (content, task).

    ``task: {task} | query: {text}`` gives task ``{task}``; ``title: {t} | text: {text}``
    gives task ``"document"`` and keeps a real title's words as content.
    """
    m = _QUERY.match(text)
    if m:
        return m.group("text"), (m.group("task").strip() or None)
    m = _DOC.match(text)
    if m:
        title = m.group("title").strip()
        body = m.group("text")
        content = body if title.lower() in ("", "none") else f"{title}\n{body}"
        return content, "document"
    return text, None


def normalise_word(word: str) -> str:
    """Lowercase and undo a plural, so "circles" meets "circle" and "volcanoes" "volcano"."""
    word = word.lower()
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes", "oes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    return word[:-1]


def text_features(text: str) -> dict[str, float]:
    """Word -> weight (sublinear in the count); stopwords dropped unless nothing else is left."""
    words = [normalise_word(w) for w in _WORD.findall(text)]
    content = [w for w in words if w not in STOPWORDS] or words
    if not content:
        stripped = text.strip()
        return {f"#raw:{stripped}": 1.0} if stripped else {}
    return {w: 1.0 + math.log(c) for w, c in Counter(content).items()}


POOL_ROWS = 1024
_POOL_SEED = 20260422


@lru_cache(maxsize=1)
def _pool() -> Vector:
    """Random Gaussian rows stored twice over, so any cyclic shift of a row is a free view.

    Shifted copies of white noise are as good as independent directions (their overlap
    is ~1/sqrt(3072)), so 1024 rows x 3072 shifts x 2 signs give millions of directions
    from 24 MB, with no per-feature generation cost.
    """
    rows = np.random.default_rng(_POOL_SEED).standard_normal((POOL_ROWS, FULL_DIM), np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    doubled = np.concatenate([rows, rows], axis=1)
    doubled.setflags(write=False)
    return doubled


@lru_cache(maxsize=65536)
def _address(space: str, feature: str) -> tuple[int, int, float]:
    """Where a feature's direction lives in the pool: (row, shift, sign), from its hash."""
    digest = blake2b(f"{space}\x00{feature}".encode(), digest_size=8).digest()
    n = int.from_bytes(digest, "little")
    row, n = n % POOL_ROWS, n // POOL_ROWS
    shift, n = n % FULL_DIM, n // FULL_DIM
    return row, shift, (1.0 if n % 2 else -1.0)


def _view(space: str, feature: str) -> tuple[Vector, float]:
    row, shift, sign = _address(space, feature)
    return _pool()[row, shift : shift + FULL_DIM], sign


def direction(space: str, feature: str) -> Vector:
    """The fixed random unit direction of a feature in a model's space."""
    view, sign = _view(space, feature)
    return view * np.float32(sign)


def _unit(v: Vector) -> Vector:
    n = float(np.sqrt(np.dot(v, v)))
    if n > 0:
        v /= np.float32(n)
    return v


def _add(acc: Vector, space: str, feature: str, weight: float) -> None:
    view, sign = _view(space, feature)
    acc += np.float32(weight * sign) * view


def _features_vector(space: str, feats: dict[str, float]) -> Vector | None:
    if not feats:
        return None
    acc = np.zeros(FULL_DIM, dtype=np.float32)
    for f, w in feats.items():
        _add(acc, space, f, w)
    return _unit(acc)


def part_vector(space: str, part: PartFeatures) -> Vector:
    """One part as a unit vector (before the Matryoshka scaling)."""
    text_vec = _features_vector(space, text_features(part.text)) if part.text else None
    if part.kind == "text":
        if text_vec is None:  # cannot happen for validated input; keep the vector defined
            return direction(space, "#empty")
        return text_vec
    acc = np.zeros(FULL_DIM, dtype=np.float32) if text_vec is None else text_vec
    own_weight = MEDIA_BYTES_WEIGHT if text_vec is not None else 1.0
    _add(acc, space, f"#{part.kind}:{part.key}", own_weight)
    _add(acc, space, f"#modality:{part.modality}", MODALITY_WEIGHT)
    return _unit(acc)


def content_vector(space: str, parts: Sequence[PartFeatures], identity: str) -> Vector:
    """The full 3072-d unit vector of one content: sum of its parts, Matryoshka-scaled."""
    if len(parts) == 1:
        acc = part_vector(space, parts[0])  # already a fresh unit vector
    else:
        acc = np.zeros(FULL_DIM, dtype=np.float32)
        for part in parts:
            acc += part_vector(space, part)
        acc = _unit(acc)
    _add(acc, space, f"#identity:{identity}", IDENTITY_WEIGHT)
    acc *= SCALE
    return _unit(acc)


def output_values(full: Vector, dims: int, *, normalize: bool = False) -> Vector:
    """The first ``dims`` values; below 3072 re-normalised only when ``normalize`` (the
    default profile follows Google's launch notes: not re-normalised)."""
    if dims >= FULL_DIM:
        return full
    head = np.ascontiguousarray(full[:dims])
    return _unit(head) if normalize else head


def space_of(model_id: str) -> str:
    """The vector space a model id names (each model has its own)."""
    return model_id.removeprefix("models/")
