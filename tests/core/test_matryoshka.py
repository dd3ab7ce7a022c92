"""Shortlist on truncated vectors, re-rank on full ones: gemb2.matryoshka."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import chromadb
import numpy as np
import pytest

from gemb2 import ConfigError, Embedder, ModelMismatchError
from gemb2.emulator import Emulator
from gemb2.matryoshka import FullVectorStore, MatryoshkaIndex, shrink

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
    before = index.store.get(["doc1"])["doc1"]
    script = (
        "import sys, chromadb\n"
        "from gemb2 import Embedder\n"
        "from gemb2.matryoshka import FullVectorStore, MatryoshkaIndex\n"
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
