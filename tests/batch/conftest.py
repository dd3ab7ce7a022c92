"""Fixtures for Batch Mode tests: a quick emulator, stores and small text corpora."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_helpers import DIMS

from gemb2 import Embedder
from gemb2.batch.embedder import BatchEmbedder
from gemb2.batch.store import JobStore
from gemb2.testing.emulator import Emulator


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The shared emulator with batch jobs finishing almost at once."""
    emulator.configure(batch_delay=0.05)
    return emulator


@pytest.fixture
def embedder(emu: Emulator) -> Iterator[Embedder]:
    with Embedder(base_url=emu.base_url, dimensions=DIMS, backoff_initial=0.01) as e:
        yield e


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = JobStore(tmp_path / "jobs.sqlite")
    yield s
    s.close()


@pytest.fixture
def batch(embedder: Embedder, store: JobStore) -> BatchEmbedder:
    return BatchEmbedder(embedder, store)
