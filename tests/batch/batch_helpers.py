"""Helpers shared by the Batch Mode tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

DIMS = 256
WORDS = [
    "volcano",
    "glacier",
    "honeybee",
    "piano",
    "ocean",
    "desert",
    "forest",
    "comet",
    "river",
    "canyon",
    "lantern",
    "harbor",
    "meadow",
    "thunder",
    "orchard",
    "falcon",
    "marble",
    "quartz",
    "violin",
    "tundra",
]


def texts(n: int) -> list[str]:
    """n distinct short texts that share words, so neighbours are meaningful."""
    return [
        f"note {i}: the {WORDS[i % 20]} near the {WORDS[(i * 7) % 20]} and {WORDS[(i * 3) % 20]}"
        for i in range(n)
    ]


def make_text_corpus(d: Path, n: int) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, t in enumerate(texts(n)):
        p = d / f"note_{i:03d}.txt"
        p.write_text(t + "\n")
        paths.append(p)
    return paths
