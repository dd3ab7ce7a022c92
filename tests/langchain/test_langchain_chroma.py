"""langchain_chroma.Chroma with GeminiEmbeddings, unchanged, on an embedded PersistentClient
and on a real `chroma run` server: texts and media in one collection, queried by text and image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import chromadb
import pytest
from langchain_chroma import Chroma

from gemb2.testing.emulator import Emulator
from langchain_gemb2 import GeminiEmbeddings

DIMS = 768
MEDIA = [
    "red_circle.png",
    "blue_square.png",
    "yellow_star.jpg",
    "piano.wav",
    "waves.mp4",
    "three_pages.pdf",
]
TEXTS = [
    "the stock market fell sharply on tuesday",
    "knead the dough and let the bread rise",
    "tune the guitar strings before the concert",
]


@pytest.fixture(params=["persistent", "server"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[chromadb.ClientAPI]:
    if request.param == "persistent":
        yield chromadb.PersistentClient(path=str(tmp_path / "db"))
    else:
        url = urlparse(request.getfixturevalue("chroma_server"))
        yield chromadb.HttpClient(host=url.hostname, port=url.port)


def _store(client: chromadb.ClientAPI, emulator: Emulator, name: str) -> Chroma:
    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS)
    return Chroma(collection_name=name, embedding_function=emb, client=client)


def test_add_texts_stores_one_vector_per_text(
    client: chromadb.ClientAPI, emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    store = _store(client, emulator, f"texts-{request.node.callspec.id}")
    ids = store.add_texts(TEXTS, metadatas=[{"n": i} for i in range(3)])
    assert len(ids) == 3
    got = store.get(include=["embeddings", "documents"])
    assert len(got["embeddings"]) == 3
    assert all(len(v) == DIMS for v in got["embeddings"])
    assert sorted(got["documents"]) == sorted(TEXTS)
    assert emulator.stats.items == 3 and emulator.stats.requests == 1
    hit = store.similarity_search("when does the bread rise", k=1)[0]
    assert hit.page_content == TEXTS[1]
    store.delete_collection()


def test_texts_and_media_in_one_collection(
    client: chromadb.ClientAPI,
    emulator: Emulator,
    media_dir: Path,
    request: pytest.FixtureRequest,
) -> None:
    name = f"mixed-{request.node.callspec.id}"
    store = _store(client, emulator, name)
    store.add_texts(TEXTS, metadatas=[{"name": f"text{i}"} for i in range(3)])
    uris = [str(media_dir / m) for m in MEDIA]
    store.add_images(uris=uris, metadatas=[{"name": m} for m in MEDIA])
    assert emulator.stats.items == len(TEXTS) + len(MEDIA)
    assert store._collection.count() == len(TEXTS) + len(MEDIA)

    # text queries find media
    for query, expected in {
        "a red circle": "red_circle.png",
        "a blue square": "blue_square.png",
        "a yellow star": "yellow_star.jpg",
        "a piano playing a note": "piano.wav",
        "ocean waves at a beach": "waves.mp4",
        "glaciers carve valleys": "three_pages.pdf",
        "the stock market fell": "text0",
    }.items():
        hits = store.similarity_search(query, k=3)
        assert hits[0].metadata["name"] == expected, (query, [h.metadata for h in hits])

    # image queries find the image, then what looks like it
    hits = store.similarity_search_by_image(uri=str(media_dir / "blue_square.png"), k=2)
    assert hits[0].metadata["name"] == "blue_square.png"
    hits = store.similarity_search_by_image(uri=str(media_dir / "waves.mp4"), k=1)
    assert hits[0].metadata["name"] == "waves.mp4"

    # another process (a fresh client and embeddings object) sees the same collection
    if request.node.callspec.id == "server":
        url = urlparse(request.getfixturevalue("chroma_server"))
        other = chromadb.HttpClient(host=url.hostname, port=url.port)
    else:
        other = client
    again = _store(other, emulator, name)
    assert again.similarity_search("a red circle", k=1)[0].metadata["name"] == "red_circle.png"
    store.delete_collection()


def test_from_texts_and_retriever(emulator: Emulator, tmp_path: Path) -> None:
    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS)
    store = Chroma.from_texts(TEXTS, emb, persist_directory=str(tmp_path / "db"))
    docs = store.as_retriever(search_kwargs={"k": 1}).invoke("guitar strings")
    assert [d.page_content for d in docs] == [TEXTS[2]]
