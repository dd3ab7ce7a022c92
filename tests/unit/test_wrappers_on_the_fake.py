"""A user's unit test: their pipeline on ``gemb2.testing.FakeTransport``, through every
wrapper's ``embedder=``, with no socket and no key. Each is written the way that
framework's docs write a pipeline; each checks the vectors equal the core's on the fake."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gemb2 import Embedder
from gemb2.testing import FakeTransport, samples

DIMS = 256


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key in the environment and no socket: the fake must need neither."""
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "CHROMA_GOOGLE_GENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def embedder(fake: FakeTransport) -> Embedder:
    return Embedder(transport=fake, dimensions=DIMS)


def reference(texts: list[str], role: str) -> list[list[float]]:
    return Embedder(transport=FakeTransport(), dimensions=DIMS).embed(texts, role=role)  # type: ignore[arg-type]


TEXTS = ["bees make honey", "volcanoes erupt lava", "glaciers carve valleys"]


def test_langchain_in_memory_vector_store(embedder: Embedder, fake: FakeTransport) -> None:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_gemb2 import GeminiEmbeddings

    embeddings = GeminiEmbeddings(embedder=embedder)
    assert embeddings.output_dimensions == DIMS
    store = InMemoryVectorStore.from_documents(
        [Document(page_content=t) for t in TEXTS], embedding=embeddings
    )
    hits = store.similarity_search("where does honey come from? bees", k=1)
    assert hits[0].page_content == "bees make honey"
    assert embeddings.embed_documents(TEXTS) == reference(TEXTS, "document")
    assert len(fake.calls) == 3  # from_documents, the query, embed_documents


def test_llamaindex_vector_store_index(embedder: Embedder, fake: FakeTransport) -> None:
    from llama_index.core import Document, VectorStoreIndex

    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    embed_model = GeminiMultiModalEmbedding(embedder=embedder)
    index = VectorStoreIndex.from_documents(
        [Document(text=t) for t in TEXTS], embed_model=embed_model
    )
    nodes = index.as_retriever(similarity_top_k=1).retrieve("glaciers carve valleys")
    assert nodes[0].node.get_content() == "glaciers carve valleys"
    assert embed_model.get_text_embedding_batch(TEXTS) == reference(TEXTS, "document")
    assert fake.stats.requests >= 2


def test_haystack_indexing_pipeline(embedder: Embedder, fake: FakeTransport) -> None:
    from haystack import Document, Pipeline
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.gemb2 import (
        GeminiDocumentEmbedder,
        GeminiTextEmbedder,
    )

    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("embedder", GeminiDocumentEmbedder(embedder=embedder))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder", "writer")
    indexing.run({"embedder": {"documents": [Document(content=t) for t in TEXTS]}})
    stored = sorted(store.filter_documents(), key=lambda d: TEXTS.index(d.content or ""))
    assert [d.embedding for d in stored] == reference(TEXTS, "document")

    query = GeminiTextEmbedder(embedder=embedder)
    assert query.run("bees make honey")["embedding"] == reference(["bees make honey"], "query")[0]
    assert "embedder" not in query.to_dict()["init_parameters"]  # an engine is not serialised
    assert len(fake.calls) == 2


def test_chroma_collection(embedder: Embedder, fake: FakeTransport, tmp_path: Path) -> None:
    import chromadb

    from gemb2.stores.chroma import GeminiEmbeddingFunction

    client = chromadb.EphemeralClient()
    ef = GeminiEmbeddingFunction(embedder=embedder)
    assert ef.get_config()["dimension"] == DIMS  # what is persisted is the engine's
    collection = client.create_collection("fake-test", embedding_function=ef)  # type: ignore[arg-type]
    collection.add(ids=["a", "b", "c"], documents=TEXTS)
    res = collection.query(query_texts=["volcanoes erupt lava"], n_results=1)
    assert res["ids"] == [["b"]]
    got = collection.get(ids=["a", "b", "c"], include=["embeddings"])["embeddings"]
    assert np.allclose(np.asarray(got), np.asarray(reference(TEXTS, "document")), atol=1e-6)
    assert len(fake.calls) == 2
    assert not os.environ.get("GOOGLE_API_KEY")


def test_media_through_the_fake(embedder: Embedder, tmp_path: Path) -> None:
    from langchain_gemb2 import GeminiEmbeddings

    png = samples.make_png(tmp_path / "red.png", "a red circle", color=(255, 0, 0))
    embeddings = GeminiEmbeddings(embedder=embedder)
    (image,) = embeddings.embed_image([str(png)])
    assert image == Embedder(transport=FakeTransport(), dimensions=DIMS).embed([png])[0]
