"""Each framework's Matryoshka retriever returns documents scored on the full vectors."""

from __future__ import annotations

from pathlib import Path

import chromadb
import numpy as np
import pytest

from gemb2 import Embedder
from gemb2.stores.matryoshka import FullVectorStore, MatryoshkaIndex
from gemb2.testing.emulator import Emulator

TEXTS = {
    "volcano": "volcanoes erupt molten lava and ash",
    "bees": "honeybees collect nectar and make honey",
    "glacier": "glaciers carve deep valleys in ice ages",
    "violin": "a violin concerto with a solo string part",
    "orbit": "satellites orbit the earth in low orbit",
    "bread": "bakers knead dough and bake fresh bread",
}


@pytest.fixture
def built(emulator: Emulator, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = client.get_or_create_collection("retr", configuration={"hnsw": {"space": "cosine"}})
    store = FullVectorStore(tmp_path / "retr.full.sqlite", 3072)
    index = MatryoshkaIndex(col, store, Embedder(base_url=emulator.base_url), small_dims=256)
    index.upsert(
        list(TEXTS),
        list(TEXTS.values()),
        documents=list(TEXTS.values()),
        metadatas=[{"topic": k} for k in TEXTS],
    )
    full = dict(
        zip(TEXTS, Embedder(base_url=emulator.base_url).embed(list(TEXTS.values())), strict=True)
    )
    return tmp_path, {k: np.asarray(v) for k, v in full.items()}


def exact(emulator: Emulator, query: str, full: dict[str, np.ndarray]) -> dict[str, float]:
    q = np.asarray(Embedder(base_url=emulator.base_url).embed_query(query))
    return {k: float(v @ q) for k, v in full.items()}


def open_index(tmp_path: Path, emulator: Emulator) -> MatryoshkaIndex:
    col = chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("retr")
    return MatryoshkaIndex(
        col,
        FullVectorStore(tmp_path / "retr.full.sqlite", 3072),
        Embedder(base_url=emulator.base_url),
        small_dims=256,
    )


def test_langchain_retriever(emulator: Emulator, built: tuple[Path, dict[str, np.ndarray]]) -> None:
    from langchain_gemb2 import GeminiMatryoshkaRetriever

    tmp_path, full = built
    docs = GeminiMatryoshkaRetriever(index=open_index(tmp_path, emulator), k=3).invoke("honey bees")
    want = exact(emulator, "honey bees", full)
    assert docs[0].id == "bees" and len(docs) == 3
    for d in docs:
        assert d.metadata["score"] == pytest.approx(want[d.id], abs=2e-3)
        assert d.metadata["score"] != pytest.approx(d.metadata["shortlist_score"], abs=1e-6)


async def test_langchain_retriever_async(
    emulator: Emulator, built: tuple[Path, dict[str, np.ndarray]]
) -> None:
    from langchain_gemb2 import GeminiMatryoshkaRetriever

    tmp_path, _ = built
    docs = await GeminiMatryoshkaRetriever(index=open_index(tmp_path, emulator), k=2).ainvoke(
        "lava"
    )
    assert docs[0].id == "volcano"


def test_llamaindex_retriever(
    emulator: Emulator, built: tuple[Path, dict[str, np.ndarray]]
) -> None:
    from llamaindex_gemb2 import GeminiMatryoshkaRetriever

    tmp_path, full = built
    nodes = GeminiMatryoshkaRetriever(open_index(tmp_path, emulator), similarity_top_k=3).retrieve(
        "violin solo"
    )
    want = exact(emulator, "violin solo", full)
    assert nodes[0].node.node_id == "violin" and len(nodes) == 3
    for n in nodes:
        assert n.score == pytest.approx(want[n.node.node_id], abs=2e-3)


def test_haystack_retriever(emulator: Emulator, built: tuple[Path, dict[str, np.ndarray]]) -> None:
    from haystack import Pipeline
    from haystack_integrations.components.retrievers.gemb2 import GeminiMatryoshkaRetriever

    tmp_path, full = built
    retriever = GeminiMatryoshkaRetriever(
        chroma_path=str(tmp_path / "db"),
        collection_name="retr",
        side_store_path=str(tmp_path / "retr.full.sqlite"),
        small_dims=256,
        top_k=3,
        api_base_url=emulator.base_url,
    )
    pipe = Pipeline()
    pipe.add_component("retriever", retriever)
    loaded = Pipeline.loads(pipe.dumps())
    docs = loaded.run({"retriever": {"query": "bake bread"}})["retriever"]["documents"]
    want = exact(emulator, "bake bread", full)
    assert docs[0].id == "bread" and len(docs) == 3
    for d in docs:
        assert d.score == pytest.approx(want[d.id], abs=2e-3)
