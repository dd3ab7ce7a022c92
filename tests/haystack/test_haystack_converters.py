"""Documents from Haystack's converters, in the indexing pipeline Haystack's docs build:
``PyPDFToDocument -> DocumentSplitter -> <Document Embedder> -> DocumentWriter``.

Converters put their source's ``file_path`` on every text chunk; a text chunk must embed as
its text (as every Haystack embedder does), whether the path is a bare name (the default) or
the full path (``store_full_path=True``). Media Documents (a ``blob``, or no content and a
media ``file_path``) still embed as media.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.components.converters import PyPDFToDocument
from haystack.components.preprocessors import DocumentSplitter
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ByteStream
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.embedders.gemb2 import (
    GeminiDocumentEmbedder,
    GeminiTextEmbedder,
)
from haystack_integrations.components.retrievers.chroma import ChromaEmbeddingRetriever
from haystack_integrations.document_stores.chroma import ChromaDocumentStore

from gemb2 import Embedder, EmbedSettings, Media, MediaReadError
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

DIM = 256
PAGES = [
    "Volcanoes erupt lava and ash. The lava cools into new rock.",
    "Honeybees make honey from nectar. A hive holds thousands of bees.",
    "Glaciers carve valleys over centuries. Their ice moves slowly downhill.",
]


@pytest.fixture
def core(emulator: Emulator) -> Iterator[Embedder]:
    """The core engine with the embedder's settings: the vectors the store must hold."""
    embedder = Embedder(EmbedSettings(base_url=emulator.base_url, dimensions=DIM))
    yield embedder
    embedder.close()


def make_store(kind: str, tmp_path: Path) -> InMemoryDocumentStore | ChromaDocumentStore:
    if kind == "in_memory":
        return InMemoryDocumentStore(embedding_similarity_function="cosine")
    return ChromaDocumentStore(
        collection_name="pdf_chunks",
        persist_path=str(tmp_path / "chroma"),
        distance_function="cosine",
    )


def retriever_for(store: InMemoryDocumentStore | ChromaDocumentStore) -> object:
    if isinstance(store, InMemoryDocumentStore):
        return InMemoryEmbeddingRetriever(document_store=store, top_k=1)
    return ChromaEmbeddingRetriever(document_store=store, top_k=1)


@pytest.mark.parametrize("store_full_path", [False, True], ids=["file_name", "full_path"])
@pytest.mark.parametrize("store_kind", ["in_memory", "chroma"])
def test_pdf_indexing_pipeline_embeds_each_chunk_as_its_text(
    emulator: Emulator,
    core: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_kind: str,
    store_full_path: bool,
) -> None:
    (tmp_path / "files").mkdir()
    pdf = samples.make_pdf(tmp_path / "files" / "nature.pdf", PAGES)
    monkeypatch.chdir(tmp_path)  # the bare file name resolves nowhere, as in a real project
    document_store = make_store(store_kind, tmp_path)

    indexing = Pipeline()
    indexing.add_component("converter", PyPDFToDocument(store_full_path=store_full_path))
    indexing.add_component(
        "splitter", DocumentSplitter(split_by="word", split_length=8, split_overlap=2)
    )
    indexing.add_component(
        "embedder",
        GeminiDocumentEmbedder(
            api_base_url=emulator.base_url, dimensions=DIM, batch_size=2, progress_bar=False
        ),
    )
    indexing.add_component("writer", DocumentWriter(document_store=document_store))
    indexing.connect("converter", "splitter")
    indexing.connect("splitter", "embedder")
    indexing.connect("embedder", "writer")
    result = indexing.run({"converter": {"sources": [str(pdf)]}}, include_outputs_from={"splitter"})

    chunks = result["splitter"]["documents"]
    n = len(chunks)
    assert n >= 4  # 30 words in chunks of 8 (overlap 2)
    expected_path = str(pdf) if store_full_path else "nature.pdf"
    assert {c.meta["file_path"] for c in chunks} == {expected_path}
    assert {c.meta["page_number"] for c in chunks} == {1, 2, 3}
    assert result["writer"]["documents_written"] == n
    assert result["embedder"]["meta"]["usage"]["modalities"] == {"text": n}
    # one call per batch of 2, each part of each request text: no PDF page went with a chunk
    assert emulator.stats.requests == math.ceil(n / 2)
    assert emulator.stats.items == n
    sent = [r["content"]["parts"] for body in emulator.stats.last_bodies for r in body["requests"]]
    assert len(sent) == n
    assert all(list(p) == ["text"] for parts in sent for p in parts)
    assert sorted(parts[0]["text"] for parts in sent) == sorted(  # batches run concurrently
        f"title: none | text: {c.content}" for c in chunks
    )

    # the stored vectors are the core's vectors of each chunk's text, in the document role
    stored = {d.id: d for d in document_store.filter_documents()}
    assert set(stored) == {c.id for c in chunks}
    emulator.reset_stats()
    expected = core.embed([c.content for c in chunks], role="document")
    assert emulator.stats.requests == 1
    for chunk, vector in zip(chunks, expected, strict=True):
        got = stored[chunk.id]
        assert got.content == chunk.content
        assert got.meta["file_path"] == expected_path
        assert len(got.embedding or []) == DIM
        assert got.embedding == pytest.approx(vector, abs=1e-6)  # Chroma keeps float32

    # and a text query finds the chunk about bees, on its page
    query = Pipeline()
    query.add_component(
        "text_embedder", GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM)
    )
    query.add_component("retriever", retriever_for(document_store))
    query.connect("text_embedder.embedding", "retriever.query_embedding")
    top = query.run({"text_embedder": {"text": "a hive holds thousands of bees"}})
    best = top["retriever"]["documents"][0]
    assert "A hive holds thousands" in (best.content or "")
    assert best.meta["page_number"] == 2


def test_media_documents_still_embed_as_media(
    emulator: Emulator, core: Embedder, media_dir: Path
) -> None:
    """A blob, or no content with a media file_path (what ImageFileToDocument gives), is media;
    a blob with content is sent together with it; content with a media file_path is text
    unless embed_file_with_content=True."""
    png = media_dir / "red_circle.png"
    wav = media_dir / "piano.wav"
    docs = [
        Document(blob=ByteStream(png.read_bytes(), mime_type="image/png")),  # content None
        Document(content=None, meta={"file_path": "red_circle.png"}),  # ImageFileToDocument
        Document(content="", meta={"file_path": "piano.wav"}),
        Document(content="a caption", blob=ByteStream(wav.read_bytes(), mime_type="audio/wav")),
        Document(content="notes about a red circle", meta={"file_path": "red_circle.png"}),
    ]
    embedder = GeminiDocumentEmbedder(
        api_base_url=emulator.base_url, dimensions=DIM, root_path=str(media_dir), progress_bar=False
    )
    pipeline = Pipeline()
    pipeline.add_component("embedder", embedder)
    out = pipeline.run({"embedder": {"documents": docs}})["embedder"]
    got = [d.embedding for d in out["documents"]]
    # the blob and the file are the same picture: sent once, both Documents get its vector
    assert out["meta"]["usage"]["deduplicated"] == 1
    assert out["meta"]["usage"]["modalities"] == {
        "image": 1,
        "audio": 1,
        "interleaved": 1,
        "text": 1,
    }
    assert emulator.stats.requests == 1
    parts = [r["content"]["parts"] for r in emulator.stats.last_bodies[-1]["requests"]]
    assert [[next(iter(p)) for p in item] for item in parts] == [
        ["inline_data"],
        ["inline_data"],
        ["text", "inline_data"],
        ["text"],
    ]
    assert parts[3][0]["text"] == "title: none | text: notes about a red circle"

    emulator.reset_stats()
    image, audio = Media.from_path(png), Media.from_path(wav)
    expected = core.embed(
        [image, image, audio, ["a caption", audio], "notes about a red circle"], role="document"
    )
    for vector, want in zip(got, expected, strict=True):
        assert vector == pytest.approx(want, abs=1e-12)

    # the explicit opt-in sends a text Document's media file with its text
    emulator.reset_stats()
    both = GeminiDocumentEmbedder(
        api_base_url=emulator.base_url,
        dimensions=DIM,
        root_path=str(media_dir),
        progress_bar=False,
        embed_file_with_content=True,
    ).run([docs[4]])
    sent = emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"]
    assert sent[0] == {"text": "notes about a red circle"}
    assert sent[1]["inline_data"]["mime_type"] == "image/png"
    assert both["documents"][0].embedding == pytest.approx(
        core.embed([["notes about a red circle", image]], role="document")[0], abs=1e-12
    )


def test_text_chunk_file_is_never_opened_unless_asked(emulator: Emulator, tmp_path: Path) -> None:
    """The chunk's PDF is not there (a bare name from the converter): text embeds; the opt-in
    reads the file and says what is missing, before any call."""
    chunk = Document(content="chunk text", meta={"file_path": "report.pdf", "page_number": 3})
    embedder = GeminiDocumentEmbedder(
        api_base_url=emulator.base_url, dimensions=DIM, root_path=str(tmp_path), progress_bar=False
    )
    out = embedder.run([chunk])
    assert len(out["documents"][0].embedding or []) == DIM
    assert out["meta"]["usage"]["modalities"] == {"text": 1}
    emulator.reset_stats()
    opt_in = GeminiDocumentEmbedder(
        api_base_url=emulator.base_url,
        dimensions=DIM,
        root_path=str(tmp_path),
        progress_bar=False,
        embed_file_with_content=True,
    )
    with pytest.raises(MediaReadError, match=r"no such file.*embed_file_with_content") as info:
        opt_in.run([chunk])
    assert chunk.id in str(info.value)
    assert emulator.stats.requests == 0
