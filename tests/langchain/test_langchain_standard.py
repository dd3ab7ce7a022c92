"""langchain-tests' standard suites, none overridden; the integration one runs over real
HTTP against the local emulator."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from gemb2.testing.emulator import Emulator
from langchain_gemb2 import GeminiEmbeddings


class TestGeminiEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[GeminiEmbeddings]:
        return GeminiEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "gemini-embedding-2", "dimensions": 768}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"GOOGLE_API_KEY": "AIza-from-env"},
            {"dimensions": 768},
            {"google_api_key": "AIza-from-env", "dimensions": 768},
        )


@pytest.fixture(scope="class")
def _class_emulator(request: pytest.FixtureRequest) -> Any:
    """An emulator of the test class's own, so the suite's calls are its alone."""
    with Emulator(port=0) as emu:
        request.cls.emulator = emu
        yield emu


@pytest.mark.usefixtures("_class_emulator")
class TestGeminiEmbeddingsIntegration(EmbeddingsIntegrationTests):
    emulator: Emulator

    @property
    def embeddings_class(self) -> type[GeminiEmbeddings]:
        return GeminiEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": self.emulator.base_url, "dimensions": 768}


def test_integration_suite_really_reached_the_emulator() -> None:
    """Guards against the suite passing on something other than wire calls."""
    emu = getattr(TestGeminiEmbeddingsIntegration, "emulator", None)
    if emu is None:
        pytest.skip("runs after the integration class in this module")
    # 4 tests: 2 query calls each for the query tests, 1 batch each for documents
    assert emu.stats.requests == 6
    assert emu.stats.items == 2 + 2 + 3 + 3
