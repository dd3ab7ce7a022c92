"""Deterministic benchmark inputs, generated once and cached under ``benchmarks/.data``.

Texts are short sentences from a fixed vocabulary; media are real files made by
``gemb2.testing.samples`` (each carries a description, so the emulator gives them
meaningful vectors). Everything is seeded: two runs measure the same inputs.
Runs in the main venv only (it uses ``gemb2.testing.samples``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

ADJECTIVES = [
    "quiet",
    "red",
    "bright",
    "ancient",
    "frozen",
    "tiny",
    "heavy",
    "golden",
    "rapid",
    "gentle",
    "hidden",
    "narrow",
    "wild",
    "silver",
    "broken",
    "distant",
    "warm",
    "hollow",
    "steep",
    "crowded",
]
NOUNS = [
    "river",
    "volcano",
    "garden",
    "engine",
    "library",
    "harbor",
    "forest",
    "glacier",
    "market",
    "bridge",
    "comet",
    "orchard",
    "canyon",
    "lighthouse",
    "desert",
    "island",
    "tower",
    "meadow",
    "reef",
    "village",
]
VERBS = [
    "crosses",
    "shelters",
    "feeds",
    "surrounds",
    "faces",
    "floods",
    "lights",
    "guards",
    "reaches",
    "follows",
    "divides",
    "hides",
    "circles",
    "joins",
    "warms",
]
PLACES = [
    "valley",
    "coast",
    "city",
    "mountain",
    "plain",
    "lake",
    "border",
    "island",
    "harbor",
    "station",
    "forest",
    "square",
    "field",
    "temple",
    "canal",
]
TOPICS = (
    "volcanoes erupting lava",
    "honeybees collecting nectar",
    "glaciers carving valleys",
    "coral reefs in warm seas",
    "black holes bending light",
    "plants turning sunlight into sugar",
    "roman aqueducts carrying water",
    "chess players attacking the king",
    "sailing boats on a lake",
    "trains crossing a mountain pass",
    "a piano playing a slow melody",
    "rain falling on a tin roof",
    "a crowd cheering in a stadium",
    "waves breaking on a rocky shore",
    "birds singing at dawn",
    "a city skyline at night",
    "wind turbines on a hill",
    "a market full of fruit",
    "snow covering a pine forest",
    "a desert road at noon",
)
COLORS = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "green": (30, 160, 60),
    "yellow": (240, 200, 20),
    "purple": (140, 40, 180),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle", "star")


def texts(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct short texts (12-20 words), like chunks of product or news copy."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [
            f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)}",
            f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} near the {rng.choice(PLACES)};",
            f"note {i}: {rng.choice(TOPICS)} and a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}.",
        ]
        out.append(" ".join(words))
    return out


def _cached(marker: Path, make: Callable[[], object]) -> None:
    """Run ``make`` unless ``marker`` says a previous run finished it."""
    if marker.exists():
        return
    make()
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))


def media_corpus(root: Path, n: int = 200) -> list[Path]:
    """``n`` files mixing images (50%), WAV audio (20%), MP4 video (15%), PDFs (15%),
    each within the model's per-item limits, so every integration can send it whole."""
    from gemb2.testing.samples import make_jpeg, make_mp4, make_pdf, make_png, make_wav

    d = root / f"media_{n}"
    manifest = root / f"media_{n}.json"  # beside the folder: indexing walks it

    def make() -> None:
        d.mkdir(parents=True, exist_ok=True)
        rng = random.Random(11)
        files: list[str] = []
        n_img, n_wav, n_mp4 = n // 2, n // 5, (n * 15) // 100
        for i in range(n):
            topic = TOPICS[i % len(TOPICS)]
            color = rng.choice(list(COLORS))
            shape = rng.choice(SHAPES)
            desc = f"a {color} {shape}: {topic} (item {i})"
            if i < n_img:
                if i % 3 == 2:
                    p = make_jpeg(d / f"img_{i:03d}.jpg", desc, color=COLORS[color], shape=shape)
                else:
                    p = make_png(d / f"img_{i:03d}.png", desc, color=COLORS[color], shape=shape)
            elif i < n_img + n_wav:
                p = make_wav(d / f"audio_{i:03d}.wav", rng.uniform(3, 8), description=desc)
            elif i < n_img + n_wav + n_mp4:
                p = make_mp4(d / f"video_{i:03d}.mp4", rng.uniform(4, 8), description=desc)
            else:
                pages = [f"{topic}: page {k + 1} of item {i}" for k in range(rng.randint(1, 6))]
                p = make_pdf(d / f"doc_{i:03d}.pdf", pages, title=desc)
            files.append(p.name)
        manifest.write_text(json.dumps(files))

    _cached(root / f".media_{n}.done", make)
    return [d / name for name in json.loads(manifest.read_text())]


def text_files(root: Path, name: str, n: int, seed: int) -> Path:
    """A folder of ``n`` small .txt files (what a user's notes folder looks like)."""
    d = root / name

    def make() -> None:
        d.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(texts(n, seed=seed)):
            (d / f"note_{i:05d}.txt").write_text(t + "\n", encoding="utf-8")

    _cached(root / f".{name}.done", make)
    return d


def long_video(root: Path, seconds: int = 600) -> Path:
    """A ``seconds``-long 640x360, 24 fps H.264 MP4 with an AAC track (about 25 MB for
    10 minutes): realistic enough that its segments are megabytes, not kilobytes."""
    from gemb2.testing.samples import make_mp4

    p = root / f"long_video_{seconds}s.mp4"

    def make() -> None:
        root.mkdir(parents=True, exist_ok=True)
        make_mp4(
            p,
            seconds,
            description="a long recorded talk about volcanoes, glaciers and coral reefs",
            size=(640, 360),
            fps=24,
            with_audio=True,
        )

    _cached(root / f".long_video_{seconds}s.done", make)
    return p
