"""Fixtures of the LangChain tests: an embeddings object on the shared emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gemb2.testing.emulator import Emulator
from langchain_gemb2 import GeminiEmbeddings

DIMS = 768


@pytest.fixture
def embeddings(emulator: Emulator) -> Iterator[GeminiEmbeddings]:
    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS)
    yield emb
    emb.embedder.close()
