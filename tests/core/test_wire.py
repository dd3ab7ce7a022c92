"""gemb2 posts the Developer API batch through the SDK's API client without re-validating
each Content; what reaches the wire must be exactly what the SDK's public call sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from gemb2 import Embedder, Item, Media
from gemb2.testing.emulator import Emulator
from gemb2.transport.base import EmbedCall
from gemb2.transport.genai import GenAITransport


def sdk_body(emulator: Emulator, contents: list[types.Content], **config: object) -> dict:
    client = genai.Client(
        api_key="not-a-key", http_options=types.HttpOptions(base_url=emulator.base_url)
    )
    response = client.models.embed_content(
        model="gemini-embedding-2",
        contents=contents,
        config=types.EmbedContentConfig(**config),  # type: ignore[arg-type]
    )
    assert response.embeddings is not None
    body: dict = emulator.stats.last_bodies[-1]
    return body


def mixed_items(media_dir: Path) -> list[tuple[Item, str | None]]:
    """Text, text with its task prefix, interleaved text + image, audio, and a URI."""
    return [
        (Item.of("plain text"), None),
        (Item.of("plain text"), "title: none | text: plain text"),
        (Item.of(["a caption", Media.from_path(media_dir / "red_circle.png")]), None),
        (Item.of(Media.from_path(media_dir / "piano.wav")), None),
        (Item.of(Media.from_url("gs://bucket/photo.jpg", mime_type="image/jpeg")), None),
    ]


def as_contents(items: list[tuple[Item, str | None]]) -> list[types.Content]:
    return [item.to_content(text) for item, text in items]


@pytest.mark.parametrize("task_type,title", [(None, None), ("RETRIEVAL_DOCUMENT", "A title")])
def test_request_body_equals_the_sdks_own(
    emulator: Emulator, media_dir: Path, task_type: str | None, title: str | None
) -> None:
    items = mixed_items(media_dir)
    expected = sdk_body(
        emulator, as_contents(items), task_type=task_type, title=title, output_dimensionality=768
    )
    transport = GenAITransport(Embedder(base_url=emulator.base_url, dimensions=768).settings)
    call = EmbedCall("gemini-embedding-2", 768, items, task_type, title)
    result = transport.post(call).decode()
    assert emulator.stats.last_bodies[-1] == expected
    assert len(result.vectors) == 5 and all(len(v) == 768 for v in result.vectors)
    asyncio.run(transport.apost(call))
    assert emulator.stats.last_bodies[-1] == expected


def test_vectors_equal_the_sdks_own(emulator: Emulator, media_dir: Path) -> None:
    items = mixed_items(media_dir)
    client = genai.Client(
        api_key="not-a-key", http_options=types.HttpOptions(base_url=emulator.base_url)
    )
    sdk = client.models.embed_content(
        model="gemini-embedding-2",
        contents=as_contents(items),
        config=types.EmbedContentConfig(output_dimensionality=3072),
    )
    transport = GenAITransport(Embedder(base_url=emulator.base_url, dimensions=3072).settings)
    ours = transport.post(EmbedCall("gemini-embedding-2", 3072, items)).decode().vectors
    assert sdk.embeddings is not None
    assert ours == [e.values for e in sdk.embeddings]


def test_service_errors_keep_the_sdks_types(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=["429"], retry_delay=0.0)
    transport = GenAITransport(Embedder(base_url=emulator.base_url, dimensions=768).settings)
    call = EmbedCall("gemini-embedding-2", 768, [(Item.of("x"), None)])
    with pytest.raises(errors.ClientError) as sync_err:
        transport.post(call)
    with pytest.raises(errors.ClientError) as async_err:
        asyncio.run(transport.apost(call))
    assert sync_err.value.code == async_err.value.code == 429
    assert "RESOURCE_EXHAUSTED" in str(sync_err.value)
