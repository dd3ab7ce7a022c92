"""Acceptance: IngestionPipeline([GeminiMediaNodeParser, GeminiMultiModalEmbedding])
into real ChromaDB (embedded and a `chroma run` server), queried through
VectorStoreIndex; media nodes neither dropped nor confused in the cache."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import pytest
from li_helpers import DIMS, part_bytes, part_kind, sent_contents
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.schema import Document, ImageNode, MetadataMode, QueryBundle
from llama_index.vector_stores.chroma import ChromaVectorStore

from gemb2 import Embedder, InputError
from gemb2.inputs.probe import av_info, pdf_page_count
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator
from llamaindex_gemb2 import (
    GeminiMediaNodeParser,
    GeminiMediaReader,
    GeminiMultiModalEmbedding,
    label_media,
)

EXPECTED = {"text": 1, "image": 1, "pdf": 3, "video": 2}
QUERIES = {
    "a red circle": "[image] red_circle.png",
    "volcanoes erupt molten lava": "[pdf] book.pdf pages 7-12",
    "honeybees make honey from nectar": None,  # the text node
    "a sailing boat crossing a calm lake": "[video] boat.mp4",
}


def _collection(client: Any, name: str = "media") -> Any:
    return client.get_or_create_collection(name, configuration={"hnsw": {"space": "cosine"}})


def _pipeline(embed_model: GeminiMultiModalEmbedding, store: Any = None, **kw: Any) -> Any:
    return IngestionPipeline(
        transformations=[GeminiMediaNodeParser(), embed_model], vector_store=store, **kw
    )


def _check_store(collection: Any) -> None:
    got = collection.get(include=["embeddings", "metadatas", "documents"])
    assert len(got["ids"]) == 7
    assert Counter(m["modality"] for m in got["metadatas"]) == EXPECTED
    assert all(len(e) == DIMS for e in got["embeddings"])
    pdf = sorted(
        (m["page_start"], m["page_end"]) for m in got["metadatas"] if m["modality"] == "pdf"
    )
    assert pdf == [(1, 6), (7, 12), (13, 14)]
    video = [m for m in got["metadatas"] if m["modality"] == "video"]
    assert all(m["end_seconds"] - m["start_seconds"] < 120 for m in video)
    assert "[pdf] book.pdf pages 7-12" in got["documents"]


def _check_queries(store: ChromaVectorStore, embed_model: GeminiMultiModalEmbedding) -> None:
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=2)
    for query, expected in QUERIES.items():
        top = retriever.retrieve(query)[0].node
        if expected is None:
            assert top.metadata["modality"] == "text", query
            assert "Honeybees" in top.get_content()
        else:
            assert top.get_content().startswith(expected), (query, top.get_content())


def test_pipeline_into_persistent_chroma(
    emulator: Emulator,
    corpus: Path,
    tmp_path: Path,
    embed_model: GeminiMultiModalEmbedding,
) -> None:
    collection = _collection(chromadb.PersistentClient(path=str(tmp_path / "db")))
    store = ChromaVectorStore(chroma_collection=collection)
    nodes = _pipeline(embed_model, store).run(documents=GeminiMediaReader().load_data(corpus))

    assert len(nodes) == 7
    assert all(n.embedding is not None and len(n.embedding) == DIMS for n in nodes)
    _check_store(collection)
    # one request; media went as media, each piece within the model's limits
    assert (emulator.stats.requests, emulator.stats.items) == (1, 7)
    sent = sent_contents(emulator)
    kinds = Counter(part_kind(c["parts"][0]) for c in sent)
    assert kinds == {"application/pdf": 3, "video/mp4": 2, "image/png": 1, "text": 1}
    assert all(len(c["parts"]) == 1 for c in sent)
    pdfs = [
        part_bytes(c["parts"][0]) for c in sent if part_kind(c["parts"][0]) == "application/pdf"
    ]
    assert [pdf_page_count(b) for b in pdfs] == [6, 6, 2]
    videos = [part_bytes(c["parts"][0]) for c in sent if part_kind(c["parts"][0]) == "video/mp4"]
    assert all(av_info(b).duration < 120 for b in videos)
    text = next(c for c in sent if part_kind(c["parts"][0]) == "text")
    assert text["parts"][0]["text"].startswith("title: none | text: file_path: ")

    _check_queries(store, embed_model)
    # a media query: an image finds the image, through the same index
    query_png = samples.make_png(tmp_path / "query.png", "a red circle", color=(250, 5, 5))
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    bundle = QueryBundle(query_str="", embedding=embed_model.get_image_embedding(str(query_png)))
    hit = index.as_retriever(similarity_top_k=1).retrieve(bundle)[0].node
    assert isinstance(hit, ImageNode)
    assert hit.image_path == str(corpus / "red_circle.png")


def test_pipeline_into_chroma_server(
    emulator: Emulator, corpus: Path, chroma_server: str, embed_model: GeminiMultiModalEmbedding
) -> None:
    url = urlparse(chroma_server)
    client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000)
    collection = _collection(client, "llamaindex-media")
    store = ChromaVectorStore(chroma_collection=collection)
    _pipeline(embed_model, store).run(documents=GeminiMediaReader().load_data(corpus))
    _check_store(collection)
    _check_queries(store, embed_model)
    client.delete_collection("llamaindex-media")


async def test_async_pipeline_matches_sync(
    emulator: Emulator, corpus: Path, embed_model: GeminiMultiModalEmbedding
) -> None:
    docs = GeminiMediaReader().load_data(corpus)
    sync = {n.get_content(): n.embedding for n in _pipeline(embed_model).run(documents=docs)}
    emulator.reset_stats()
    docs = GeminiMediaReader().load_data(corpus)
    nodes = await _pipeline(embed_model).arun(documents=docs)
    assert emulator.stats.items == 7
    assert {n.get_content() for n in nodes} == set(sync)
    for n in nodes:
        assert n.embedding == pytest.approx(sync[n.get_content()])


def _vectors(nodes: Any) -> dict[str, list[float]]:
    return {n.get_content(): n.embedding for n in nodes}


def test_cached_reruns_never_reuse_one_media_vector_for_another(
    emulator: Emulator, tmp_path: Path, embed_model: GeminiMultiModalEmbedding
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    image = samples.make_png(folder / "photo.png", "a red circle", color=(255, 0, 0))
    samples.make_pdf(folder / "facts.pdf", ["volcanoes erupt lava", "bees make honey"])
    cache = IngestionCache()
    pipeline = _pipeline(embed_model, cache=cache)

    first = _vectors(pipeline.run(documents=GeminiMediaReader().load_data(folder)))
    assert emulator.stats.items == 2
    emulator.reset_stats()
    # unchanged files: everything comes from the cache, nothing is sent
    second = _vectors(pipeline.run(documents=GeminiMediaReader().load_data(folder)))
    assert emulator.stats.requests == 0
    assert second == first

    # the same path now holds another picture: its node must get the new picture's vector
    samples.make_png(image, "a blue square", color=(0, 0, 255), shape="square")
    third = _vectors(pipeline.run(documents=GeminiMediaReader().load_data(folder)))
    assert emulator.stats.requests == 1
    blue = Embedder(base_url=emulator.base_url, dimensions=DIMS).embed([image])[0]
    assert third["[image] photo.png"] == pytest.approx(blue)
    assert third["[image] photo.png"] != pytest.approx(first["[image] photo.png"])
    assert third["[pdf] facts.pdf pages 1-2"] == pytest.approx(first["[pdf] facts.pdf pages 1-2"])

    # two pictures under one name in one run: two nodes, two vectors
    other = tmp_path / "other"
    other.mkdir()
    samples.make_png(other / "photo.png", "a green triangle", color=(0, 200, 0), shape="triangle")
    both = pipeline.run(documents=GeminiMediaReader().load_data([folder / "photo.png", other]))
    assert len(both) == 2
    assert both[0].get_content() == both[1].get_content() == "[image] photo.png"
    assert both[0].embedding != pytest.approx(both[1].embedding)


def test_textless_documents_are_refused_by_the_cache(
    emulator: Emulator, media_dir: Path, embed_model: GeminiMultiModalEmbedding
) -> None:
    """LlamaIndex keys its cache on get_content(metadata_mode=ALL), which is "" for a
    Document without text (its metadata is left out too): refused, naming the fix."""
    png = str(media_dir / "red_circle.png")
    with pytest.raises(InputError, match=r"red_circle\.png.*label_media"):
        _pipeline(embed_model, cache=IngestionCache()).run(
            documents=[Document(metadata={"file_path": png})]
        )
    assert emulator.stats.requests == 0
    nodes = _pipeline(embed_model, cache=IngestionCache()).run(
        documents=label_media([Document(metadata={"file_path": png})])
    )
    assert [n.get_content() for n in nodes] == ["[image] red_circle.png"]


def test_vector_store_index_keeps_media_nodes(
    emulator: Emulator, corpus: Path, tmp_path: Path, embed_model: GeminiMultiModalEmbedding
) -> None:
    collection = _collection(chromadb.PersistentClient(path=str(tmp_path / "db")))
    store = ChromaVectorStore(chroma_collection=collection)
    index = VectorStoreIndex.from_documents(
        GeminiMediaReader().load_data(corpus),
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
        transformations=[GeminiMediaNodeParser(), embed_model],
    )
    assert collection.count() == 7  # no media node dropped as empty
    assert emulator.stats.items == 7  # embedded once, by the transformation
    top = index.as_retriever(similarity_top_k=1).retrieve("a red circle")[0].node
    assert top.get_content() == "[image] red_circle.png"

    # nodes embedded first, then an in-memory index: kept, and not embedded again; with
    # no document metadata merged in, only the label keeps a media node's content non-empty
    emulator.reset_stats()
    parser = GeminiMediaNodeParser(include_metadata=False)
    nodes = embed_model(parser(GeminiMediaReader().load_data(corpus)))
    assert all(n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes)
    memory = VectorStoreIndex(nodes, embed_model=embed_model)
    assert emulator.stats.items == 7
    assert len(memory.index_struct.nodes_dict) == 7
    hit = memory.as_retriever(similarity_top_k=1).retrieve("volcanoes erupt molten lava")[0]
    assert hit.node.get_content() == "[pdf] book.pdf pages 7-12"


def test_example_runs_offline(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).parents[2] / "examples" / "llamaindex_quickstart.py"
    copy = tmp_path / script.name
    shutil.copy(script, copy)
    result = subprocess.run(
        [sys.executable, str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stored 13 nodes" in out
    assert "piece 2/2: [video] lake.mp4" in out
    assert "'Roman aqueducts carrying water' -> [pdf] science_facts.pdf pages 7-8" in out
    assert "'a red circle' -> [image] red_circle.png" in out
