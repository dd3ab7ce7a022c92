"""Fixtures for the LlamaIndex wrapper: a mixed folder (text, PNG, 14-page PDF,
3-minute video), an embedding model pointed at the emulator, and body helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from li_helpers import BOOK_PAGES, DIMS, NOTES, VIDEO_DESCRIPTION

from gemb2.ingest.pieces import PIECES
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator
from llamaindex_gemb2 import GeminiMultiModalEmbedding


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The acceptance folder: a text file, a PNG, a 14-page PDF and a 3-minute video."""
    d = tmp_path_factory.mktemp("li-corpus")
    (d / "notes.txt").write_text(NOTES + "\n", encoding="utf-8")
    samples.make_png(d / "red_circle.png", "a red circle", color=(255, 0, 0), shape="circle")
    samples.make_pdf(d / "book.pdf", BOOK_PAGES)
    # tiny frames, low fps: a 3-minute video of a few hundred kB, cut in 2 segments
    samples.make_mp4(d / "boat.mp4", 180, description=VIDEO_DESCRIPTION, fps=2, size=(32, 32))
    return d


@pytest.fixture
def embed_model(emulator: Emulator) -> Iterator[GeminiMultiModalEmbedding]:
    model = GeminiMultiModalEmbedding(base_url=emulator.base_url, dimensions=DIMS)
    yield model
    model.close()


@pytest.fixture(autouse=True)
def _fresh_pieces() -> Iterator[None]:
    """Each test starts without pieces remembered by an earlier test's parser."""
    PIECES.clear()
    yield
    PIECES.clear()
