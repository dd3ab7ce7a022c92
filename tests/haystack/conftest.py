"""Fixtures for the Haystack components (the Chroma server and emulator are the shared ones)."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
