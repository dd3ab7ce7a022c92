"""Shortlist on truncated vectors, re-rank on full ones: gemb2.stores.matryoshka."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest

from gemb2 import ConfigError, Embedder, ModelMismatchError
from gemb2.stores.matryoshka import FullVectorStore, MatryoshkaIndex, shrink
from gemb2.testing.emulator import Emulator

TOPICS = ["volcano", "honeybee", "glacier", "violin", "satellite", "orchard", "submarine", "desert"]


def corpus() -> tuple[list[str], list[str]]:
    texts = [
        f"{TOPICS[i % 8]} note {i} about {TOPICS[(i * 3) % 8]} and {TOPICS[(i * 5 + 1) % 8]} item{i}"
        for i in range(240)
    ]
    return [f"doc{i}" for i in range(240)], texts


def build(emulator: Emulator, tmp_path: Path, name: str = "mat") -> MatryoshkaIndex:
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = client.get_or_create_collection(name, configuration={"hnsw": {"space": "cosine"}})
    store = FullVectorStore(tmp_path / f"{name}.full.sqlite", 3072)
    return MatryoshkaIndex(col, store, Embedder(base_url=emulator.base_url), small_dims=768)


def test_same_top10_as_exact_full_search(emulator: Emulator, tmp_path: Path) -> None:
    ids, texts = corpus()
    index = build(emulator, tmp_path)
    index.upsert(ids, texts, metadatas=[{"n": i} for i in range(240)], documents=texts)
    assert index.collection.count() == 240 and len(index.store) == 240
    emb = Embedder(base_url=emulator.base_url)
    full = np.asarray(emb.embed(texts), dtype=np.float32)
    for query in ("volcano and glacier", "violin satellite", "a note about orchard submarine"):
        q = np.asarray(emb.embed_query(query), dtype=np.float32)
        exact = [ids[i] for i in np.argsort(-(full @ q))[:10]]
        hits = index.query(query, k=10)
        assert [h.id for h in hits] == exact
        assert hits[0].score == pytest.approx(float(full[ids.index(hits[0].id)] @ q), abs=2e-3)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # stored small vectors are the truncated, re-normalised full ones
    small = index.collection.get(ids=["doc3"], include=["embeddings"])["embeddings"][0]
    assert len(small) == 768
    assert np.allclose(small, shrink(full[3], 768), atol=1e-6)


def test_side_store_consistent_through_upsert_delete_and_reopen(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids, texts = corpus()
    index = build(emulator, tmp_path)
    index.upsert(ids[:50], texts[:50])
    index.upsert(["doc1"], ["replaced text about lighthouses"])
    index.delete(["doc2", "doc3"])
    assert index.check() == (set(), set())
    assert len(index.store) == 48 and index.collection.count() == 48
    view = index.as_collection()  # what the indexer writes through: Chroma's get, ids first
    assert view.get(["doc1", "doc2"])["ids"] == view.get(ids=["doc1", "doc2"])["ids"] == ["doc1"]
    before = index.store.get(["doc1"])["doc1"]
    script = (
        "import sys, chromadb\n"
        "from gemb2 import Embedder\n"
        "from gemb2.stores.matryoshka import FullVectorStore, MatryoshkaIndex\n"
        "d = sys.argv[1]\n"
        "col = chromadb.PersistentClient(path=d + '/db').get_collection('mat')\n"
        "idx = MatryoshkaIndex(col, FullVectorStore(d + '/mat.full.sqlite', 3072), Embedder(base_url=sys.argv[2]))\n"
        "assert idx.check() == (set(), set())\n"
        "print(idx.query('lighthouses', k=1)[0].id, len(idx.store))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), emulator.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["doc1", "48"]
    assert np.allclose(
        FullVectorStore(tmp_path / "mat.full.sqlite", 3072).get(["doc1"])["doc1"], before
    )


def test_store_is_compact_and_refuses_mismatch(tmp_path: Path, emulator: Emulator) -> None:
    store = FullVectorStore(tmp_path / "s.sqlite", 3072)
    store.upsert(["a"], [np.ones(3072)])
    assert store.nbytes() == 3072 * 2  # float16
    store.close()
    with pytest.raises(ModelMismatchError, match="3072-d"):
        FullVectorStore(tmp_path / "s.sqlite", 768)
    with pytest.raises(ConfigError, match="small_dims"):
        MatryoshkaIndex(
            None,
            FullVectorStore(tmp_path / "t.sqlite", 3072),
            Embedder(base_url=emulator.base_url),
            small_dims=3072,
        )


def test_store_matrix_rows_in_order_with_missing_ids(tmp_path: Path) -> None:
    store = FullVectorStore(tmp_path / "m.sqlite", 4)
    store.upsert(["a", "b", "c"], [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0]])
    vectors, found = store.matrix(["c", "zz", "a"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 4)
    assert found.tolist() == [True, False, True]
    assert vectors.tolist() == [[0, 0, 3, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    vectors, found = store.matrix(["b", "a"])
    assert found.all() and vectors.tolist() == [[0, 2, 0, 0], [1, 0, 0, 0]]
    assert store.matrix([])[0].shape == (0, 4)
    # more ids than one SELECT takes, after an overwrite and a delete
    ids = [f"x{i}" for i in range(1200)]
    store.upsert(ids, np.arange(1200 * 4).reshape(1200, 4) % 512)  # exact in float16
    store.upsert(["x7"], [[9, 9, 9, 9]])
    store.delete(["x8"])
    vectors, found = store.matrix(ids[::-1])
    assert found.sum() == 1199 and not found[1200 - 1 - 8]
    assert vectors[1200 - 1 - 7].tolist() == [9, 9, 9, 9]
    assert vectors[0].tolist() == [188, 189, 190, 191]  # x1199
    assert store.get(["x7", "x8"]).keys() == {"x7"}
    # a new file uses large pages; an existing one keeps its own and still reads
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == 8192
    store.close()
    reopened = FullVectorStore(tmp_path / "m.sqlite", 4)
    assert reopened.matrix(["x7"])[0].tolist() == [[9, 9, 9, 9]]


class Recording:
    """A Chroma collection that records what each query and get asked for."""

    def __init__(self, col: Any) -> None:
        self.col = col
        self.calls: list[tuple[str, Any, int | None]] = []

    def query(self, **kwargs: Any) -> Any:
        self.calls.append(("query", kwargs.get("include"), kwargs.get("n_results")))
        return self.col.query(**kwargs)

    def get(self, **kwargs: Any) -> Any:
        self.calls.append(("get", kwargs.get("include"), len(kwargs.get("ids") or [])))
        return self.col.get(**kwargs)


def test_query_is_one_shortlist_call_and_a_rerank(emulator: Emulator, tmp_path: Path) -> None:
    ids, texts = corpus()
    index = build(emulator, tmp_path)
    index.upsert(ids, texts, metadatas=[{"n": i} for i in range(240)], documents=texts)
    emb = Embedder(base_url=emulator.base_url)
    full = np.asarray(emb.embed(texts), dtype=np.float32)
    q = np.asarray(emb.embed_query("glacier and violin"), dtype=np.float32)
    index.store.delete(["doc0"])  # a candidate without a full vector keeps its shortlist score
    rec = Recording(index.collection)
    index.collection = rec
    hits = index.query_vector(q, k=5)
    assert rec.calls == [("query", ["distances", "metadatas", "documents"], 20)]
    assert len(hits) == 5
    for h in hits:
        n = ids.index(h.id)
        assert h.document == texts[n] and h.metadata == {"n": n}
        small = float(shrink(full[n], 768) @ shrink(q, 768))
        assert h.shortlist_score == pytest.approx(small, abs=1e-5)
        want = small if h.id == "doc0" else float(full[n] @ q)
        assert h.score == pytest.approx(want, abs=2e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    present = [i for i in range(240) if i != 0]
    assert [h.id for h in hits if h.id != "doc0"] == [
        ids[i] for i in sorted(present, key=lambda i: -float(full[i] @ q))
    ][: len([h for h in hits if h.id != "doc0"])]
    # a filter that matches nothing: nothing more to do
    rec.calls.clear()
    assert index.query_vector(q, k=5, where={"n": -1}) == []
    assert [c[0] for c in rec.calls] == ["query"]
