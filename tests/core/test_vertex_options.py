"""Vertex-only options (auto_truncate, document_ocr, audio_track_extraction) and the retired
preview id, through the real SDK to the emulator's Developer API and Vertex AI routes."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from gemb2 import ConfigError, Embedder, EmbedSettings, LimitExceededError
from gemb2.model import catalog as models
from gemb2.testing.emulator import Emulator

VERTEX_OPTIONS = {"auto_truncate": True, "document_ocr": True, "audio_track_extraction": False}


def sent_configs(emulator: Emulator) -> list[dict[str, Any]]:
    """The options of each request sent (in ``:batchEmbedContents`` calls, or one
    ``:embedContent`` call per item on SDKs before 3.4)."""
    return [
        r["embedContentConfig"]
        for body in emulator.stats.last_bodies
        for r in body.get("requests", [body])
    ]


def vertex(emulator: Emulator, **kw: Any) -> Embedder:
    return Embedder(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=Credentials(token="t"),
        base_url=emulator.base_url,
        dimensions=768,
        **kw,
    )


def test_vertex_options_are_sent_under_embed_content_config(emulator: Emulator) -> None:
    out = vertex(emulator, **VERTEX_OPTIONS).embed(["one", "two"])
    assert len(out) == 2
    assert (
        sent_configs(emulator)
        == [
            {
                "outputDimensionality": 768,
                "autoTruncate": True,
                "documentOcr": True,
                "audioTrackExtraction": False,
            }
        ]
        * 2
    )


def test_unset_vertex_options_are_not_sent(emulator: Emulator) -> None:
    vertex(emulator).embed(["one"])
    assert sent_configs(emulator) == [{"outputDimensionality": 768}]


def test_auto_truncate_lets_the_service_cut_long_text(emulator: Emulator) -> None:
    long_text = "word " * 20_000  # far over 8,192 tokens
    with pytest.raises(LimitExceededError, match="8192 tokens per item"):
        vertex(emulator).embed([long_text])
    assert emulator.stats.requests == 0  # refused before any call
    (vector,) = vertex(emulator, auto_truncate=True).embed([long_text])
    assert len(vector) == 768 and emulator.stats.requests == 1


@pytest.mark.parametrize("option", sorted(VERTEX_OPTIONS))
def test_vertex_options_are_refused_on_the_developer_api(emulator: Emulator, option: str) -> None:
    with pytest.raises(ConfigError, match=rf"{option} is Vertex AI only.*vertexai=True"):
        Embedder(base_url=emulator.base_url, **{option: True})
    assert emulator.stats.requests == 0


def test_audio_track_extraction_applies_the_shorter_video_limit() -> None:
    on = EmbedSettings(vertexai=True, project="p", location="l", audio_track_extraction=True)
    off = EmbedSettings(vertexai=True, project="p", location="l", audio_track_extraction=False)
    assert on.use_video_audio is True and off.use_video_audio is False


def test_the_preview_id_is_an_alias_never_sent(emulator: Emulator) -> None:
    models._warned.clear()
    with pytest.warns(FutureWarning, match="shut down on 2026-08-10; using 'gemini-embedding-2'"):
        emb = Embedder(base_url=emulator.base_url, model="gemini-embedding-2-preview")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        again = Embedder(base_url=emulator.base_url, model="models/gemini-embedding-2-preview")
    assert emb.model == again.model == emb.settings.model == "gemini-embedding-2"
    # the emulator answers 404 for the retired id, as Google does: this only works if it
    # was never sent
    vectors = emb.embed(["cats and dogs"])
    assert emulator.stats.last_bodies[-1]["requests"][0]["model"] == "models/gemini-embedding-2"
    assert vectors == Embedder(base_url=emulator.base_url).embed(["cats and dogs"])


def test_langchain_takes_the_vertex_options(emulator: Emulator) -> None:
    from langchain_gemb2 import GeminiEmbeddings

    with pytest.raises(ValueError, match="document_ocr is Vertex AI only"):
        GeminiEmbeddings(base_url=emulator.base_url, document_ocr=True)
    emb = GeminiEmbeddings(
        vertexai=True,
        project="proj",
        location="us-central1",
        base_url=emulator.base_url,
        dimensions=768,
        document_ocr=True,
    )
    assert emb.embedder.settings.document_ocr is True


def test_every_other_wrapper_refuses_them_on_the_developer_api(emulator: Emulator) -> None:
    from haystack_integrations.components.embedders.gemb2 import GeminiDocumentEmbedder

    from gemb2.stores.chroma import GeminiEmbeddingFunction
    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    url = emulator.base_url
    with pytest.raises(ConfigError, match="auto_truncate is Vertex AI only"):
        GeminiMultiModalEmbedding(base_url=url, auto_truncate=True)
    with pytest.raises(ConfigError, match="document_ocr is Vertex AI only"):
        GeminiDocumentEmbedder(api_base_url=url, settings={"document_ocr": True})
    with pytest.raises(ConfigError, match="audio_track_extraction is Vertex AI only"):
        GeminiEmbeddingFunction(base_url=url, audio_track_extraction=True)
    assert emulator.stats.requests == 0


def test_every_other_wrapper_sends_them_on_vertex(emulator: Emulator) -> None:
    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    model = GeminiMultiModalEmbedding(
        vertexai=True,
        project="proj",
        location="us-central1",
        base_url=emulator.base_url,
        dimensions=768,
        document_ocr=True,
    )
    assert model.embedder.settings.document_ocr is True
    assert model.to_dict()["document_ocr"] is True
