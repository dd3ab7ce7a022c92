"""Helpers of the reliability tests: corpora, fault knobs, the CLI in-process, Chroma dumps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gemb2.cli.main import main
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

DIMS = 128
FAULT_KINDS = ("429", "500", "503", "slow", "drop")
# With this seed the emulator's first 20 draws at a 30% rate hold 7 faults, every kind,
# never two in a row: a short run meets each kind without long backoffs (draws follow
# request arrival order).
FAULT_SEED = 691
CLIENT_TIMEOUT = 1.0  # seconds per request on the client
SLOW_SECONDS = 1.6  # a "slow" fault answers only after the client gave up
# retries that are quick enough for tests yet do not run out under a 30% fault rate
FAST_RETRIES: dict[str, Any] = {
    "timeout": CLIENT_TIMEOUT,
    "max_retries": 8,
    "backoff_initial": 0.05,
    "backoff_max": 0.3,
}
MEDIA_DESCRIPTIONS = {
    "red_circle.png": "a red circle",
    "yellow_star.jpg": "a yellow star",
    "piano.wav": "a piano playing a single note",
    "song.mp3": "a short song on a flute",
    "waves.mp4": "ocean waves at a beach",
    "facts.pdf": "volcanoes erupt lava",
}


def inject_faults(emu: Emulator, rate: float = 0.3) -> None:
    """30% of requests fail: 429 with a retry delay, 500, 503, slow past the timeout, drop."""
    emu.configure(
        fault_rate=rate,
        faults=FAULT_KINDS,
        retry_delay=0.05,
        slow_seconds=SLOW_SECONDS,
        seed=FAULT_SEED,
    )


def text_of(i: int) -> str:
    """A short, distinct text (shared words keep the emulator's vectors structured)."""
    return f"note {i}: topic {i % 37} about item {i % 11} and thing {i}"


def make_media(folder: Path) -> list[Path]:
    """One small file of each kind the model takes: PNG, JPEG, WAV, MP3, MP4, PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    d = MEDIA_DESCRIPTIONS
    return [
        samples.make_png(folder / "red_circle.png", d["red_circle.png"], size=(64, 64)),
        samples.make_jpeg(folder / "yellow_star.jpg", d["yellow_star.jpg"], size=(64, 64)),
        samples.make_wav(folder / "piano.wav", 1, description=d["piano.wav"]),
        samples.make_mp3(folder / "song.mp3", 1, description=d["song.mp3"]),
        samples.make_mp4(folder / "waves.mp4", 2, description=d["waves.mp4"], size=(64, 48)),
        samples.make_pdf(folder / "facts.pdf", [d["facts.pdf"], "honeybees make honey"]),
    ]


def make_corpus(folder: Path, texts: int, *, media: bool = True) -> list[Path]:
    """``texts`` one-line text files plus (optionally) six media files: one item each."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(texts):
        p = folder / f"t{i:05d}.txt"
        p.write_text(text_of(i))
        files.append(p)
    if media:
        files += make_media(folder)
    return sorted(files)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``gemb2 ARGV`` in this process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


_USAGE = re.compile(r"(\d+) API requests, (\d+) retries, (\d+) from cache")


def reported_usage(out: str) -> tuple[int, int, int]:
    """(requests, retries, cached) from the CLI's summary line."""
    m = _USAGE.search(out)
    assert m, f"no usage line in {out!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)  # the CLI's settings: one client per path


def persistent(path: Path) -> Any:
    import chromadb

    return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


def forget_clients() -> None:
    """Drop Chroma's per-path client cache, so the next client reads what another process
    wrote instead of this process's view."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def dump(collection: Any) -> dict[str, tuple[list[float], dict[str, Any]]]:
    """Every record of a collection: id -> (vector, metadata)."""
    got = collection.get(include=["embeddings", "metadatas"])
    metas = got["metadatas"] or [{}] * len(got["ids"])
    return {
        rid: ([float(x) for x in emb], dict(meta or {}))
        for rid, emb, meta in zip(got["ids"], got["embeddings"], metas, strict=True)
    }


def assert_same_vectors(
    got: dict[str, list[float]], want: dict[str, list[float]], *, tol: float = 1e-6
) -> None:
    """Same keys, and every vector equal to the reference's within ``tol``."""
    import numpy as np

    assert set(got) == set(want), (sorted(set(got) ^ set(want)))[:10]
    worst = max(float(np.max(np.abs(np.asarray(got[k]) - np.asarray(want[k])))) for k in want)
    assert worst <= tol, f"a vector differs from the fault-free run by {worst}"
