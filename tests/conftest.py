"""Shared fixtures: a real emulator over loopback HTTP and generated media files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemb2.emulator import Emulator, EmulatorConfig

for _var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    with Emulator(port=0, config=EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: Emulator) -> Iterator[Emulator]:
    """The shared emulator with knobs reset and counters zeroed for each test."""
    emulator_session.configure(**EmulatorConfig().model_dump()) if hasattr(
        EmulatorConfig(), "model_dump"
    ) else None
    emulator_session.reset_stats()
    yield emulator_session
    emulator_session.reset_stats()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful of small real media files with descriptive text inside them."""
    from gemb2 import samples

    d = tmp_path_factory.mktemp("media")
    samples.make_png(d / "red_circle.png", "a red circle", color=(255, 0, 0), shape="circle")
    samples.make_png(d / "blue_square.png", "a blue square", color=(0, 0, 255), shape="square")
    samples.make_jpeg(d / "yellow_star.jpg", "a yellow star", color=(255, 220, 0), shape="star")
    samples.make_wav(d / "piano.wav", 3, description="a piano playing a single note")
    samples.make_mp4(d / "waves.mp4", 4, description="ocean waves at a beach")
    samples.make_pdf(d / "three_pages.pdf", ["volcanoes erupt lava", "honeybees make honey", "glaciers carve valleys"])
    return d
