"""Shortlist-and-rerank retrieval on Matryoshka vectors.

Each item is embedded once at full size. The approximate index (a Chroma
collection) holds the leading ``small_dims`` values re-normalised; a compact side
store holds the full vector under the same id. A query is embedded once at full
size, shortlists ``k * oversample`` candidates on the small index, and re-ranks
them by exact cosine on the full vectors.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gemb2.engine.embedder import Embedder
from gemb2.errors import ConfigError, ModelMismatchError
from gemb2.inputs.media import ItemLike
from gemb2.stores.reads import paged_get
from gemb2.stores.writer import ChromaWriter

PAGE_SIZE = 8192  # bytes per SQLite page of a new side store
MMAP_SIZE = 1 << 31  # bytes SQLite may map for reads (address space, not memory; capped by SQLite)


class FullVectorStore:
    """Full vectors keyed by id in one SQLite file, as float16 (or float32) blobs."""

    def __init__(self, path: str | Path, dimensions: int, dtype: str = "float16") -> None:
        if dtype not in ("float16", "float32"):
            raise ConfigError("dtype must be float16 or float32")
        self.path, self.dimensions, self.dtype = str(path), dimensions, np.dtype(dtype)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # a new file gets pages that hold one float16 3072-d row without an overflow page
        # (no effect on an existing file); reads go through memory-mapped I/O
        self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS full (id TEXT PRIMARY KEY, v BLOB)")
        stored = dict(self._db.execute("SELECT k, v FROM meta").fetchall())
        if stored and (int(stored["dimensions"]), stored["dtype"]) != (dimensions, dtype):
            raise ModelMismatchError(
                f"side store {self.path} holds {stored['dimensions']}-d {stored['dtype']} vectors, "
                f"not {dimensions}-d {dtype}"
            )
        self._db.executemany(
            "INSERT OR IGNORE INTO meta VALUES (?, ?)",
            [("dimensions", str(dimensions)), ("dtype", dtype)],
        )

    def upsert(self, ids: Sequence[str], vectors: Sequence[Sequence[float]] | np.ndarray) -> None:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dimensions:
            raise ValueError(f"expected {self.dimensions}-d vectors, got shape {arr.shape}")
        rows = [(i, v.astype(self.dtype).tobytes()) for i, v in zip(ids, arr, strict=True)]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO full VALUES (?, ?)", rows)
            self._db.execute("COMMIT")

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM full WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    def matrix(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The full vectors of ``ids`` as rows of one float32 matrix, in the order given,
        and which of them were found (rows of missing ids are zero). One ``SELECT ... IN``
        per 500 ids, one decode for all rows."""
        ids = list(ids)
        blobs: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                blobs.update(
                    self._db.execute(f"SELECT id, v FROM full WHERE id IN ({marks})", chunk)
                )
        rows = [i for i, rid in enumerate(ids) if rid in blobs]
        raw = b"".join(blobs[ids[i]] for i in rows)
        got = np.frombuffer(raw, dtype=self.dtype).reshape(len(rows), self.dimensions)
        if len(rows) == len(ids):  # the usual case: every id found
            return got.astype(np.float32), np.ones(len(ids), dtype=bool)
        out = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        out[rows], found[rows] = got, True
        return out, found

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        vectors, found = self.matrix(ids)
        return {rid: vectors[i] for i, rid in enumerate(ids) if found[i]}

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM full")}

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM full").fetchone()[0])

    def nbytes(self) -> int:
        return len(self) * self.dimensions * self.dtype.itemsize

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # exact cosine on the full vectors
    shortlist_score: float  # cosine on the small vectors
    metadata: dict[str, Any] = field(default_factory=dict)
    document: str | None = None


def shrink(vectors: np.ndarray, dims: int) -> np.ndarray:
    """Leading ``dims`` values, re-normalised: a valid smaller vector of the same model."""
    head = np.asarray(vectors, dtype=np.float32)[..., :dims]
    norms = np.linalg.norm(head, axis=-1, keepdims=True)
    return head / np.where(norms == 0, 1, norms)


class MatryoshkaIndex:
    """A Chroma collection of small vectors plus a side store of full ones, kept in step."""

    def __init__(
        self,
        collection: Any,
        store: FullVectorStore,
        embedder: Embedder,
        *,
        small_dims: int = 768,
        oversample: int = 4,
    ) -> None:
        if embedder.dimensions != store.dimensions:
            raise ConfigError(
                f"embedder gives {embedder.dimensions}-d vectors, side store holds "
                f"{store.dimensions}-d"
            )
        if not 1 <= small_dims < store.dimensions:
            raise ConfigError(f"small_dims must be below {store.dimensions}")
        if oversample < 1:
            raise ConfigError("oversample must be at least 1")
        self.collection, self.store, self.embedder = collection, store, embedder
        self.small_dims, self.oversample = small_dims, oversample

    def upsert(
        self,
        ids: Sequence[str],
        inputs: Sequence[ItemLike] | None = None,
        *,
        vectors: Sequence[Sequence[float]] | None = None,
        metadatas: Sequence[dict[str, Any]] | None = None,
        documents: Sequence[str] | None = None,
    ) -> None:
        """Embed (or take) full vectors; the side store is written first so that every
        id in the small index can be re-ranked. Written within the collection's write
        limits (``ChromaWriter``)."""
        if vectors is None:
            if inputs is None:
                raise ConfigError("give inputs to embed or vectors")
            vectors = self.embedder.embed(inputs, role="document")
        ChromaWriter(self.as_collection()).upsert(
            ids,
            vectors,
            metadatas=list(metadatas) if metadatas is not None else None,
            documents=list(documents) if documents is not None else None,
        )

    add = upsert

    def delete(self, ids: Sequence[str]) -> None:
        self.collection.delete(ids=list(ids))
        self.store.delete(ids)

    def query_vector(
        self, full: Sequence[float], k: int = 10, *, where: dict[str, Any] | None = None
    ) -> list[Hit]:
        q = np.asarray(full, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        # the shortlist, documents and metadatas included: one Chroma call (a second one,
        # to fetch them for the k survivors alone, cost as much as it saved: measured)
        res = self.collection.query(
            query_embeddings=[shrink(q, self.small_dims)],
            n_results=k * self.oversample,
            where=where,
            include=["distances", "metadatas", "documents"],
        )
        ids = list(res["ids"][0])
        if not ids:
            return []
        small = [1.0 - float(d) for d in res["distances"][0]]
        metas = (res.get("metadatas") or [[None] * len(ids)])[0]
        docs = (res.get("documents") or [[None] * len(ids)])[0]
        # re-rank: one matrix-vector product over the candidates' full vectors; a
        # candidate missing from the side store keeps its shortlist score
        vecs, found = self.store.matrix(ids)
        norms = np.linalg.norm(vecs, axis=1)
        exact = (vecs @ q) / np.where(norms == 0, 1, norms)
        scores = [float(exact[i]) if found[i] else small[i] for i in range(len(ids))]
        order = sorted(range(len(ids)), key=scores.__getitem__, reverse=True)[:k]
        return [
            Hit(
                id=ids[i],
                score=scores[i],
                shortlist_score=small[i],
                metadata=dict(metas[i] or {}),
                document=docs[i],
            )
            for i in order
        ]

    def query(
        self, query: ItemLike, k: int = 10, *, where: dict[str, Any] | None = None
    ) -> list[Hit]:
        return self.query_vector(self.embedder.embed([query], role="query")[0], k, where=where)

    async def aquery(
        self, query: ItemLike, k: int = 10, *, where: dict[str, Any] | None = None
    ) -> list[Hit]:
        vector = (await self.embedder.aembed([query], role="query"))[0]
        return self.query_vector(vector, k, where=where)

    def as_collection(self) -> MatryoshkaCollection:
        return MatryoshkaCollection(self)

    def check(self) -> tuple[set[str], set[str]]:
        """Ids only in the small index, and ids only in the side store; both empty if consistent."""
        small = set(paged_get(self.collection, include=[])["ids"])
        full = self.store.ids()
        return small - full, full - small


class MatryoshkaCollection:
    """Looks like the Chroma collection to a writer (``get``, ``upsert``, ``delete``) but
    takes full vectors, storing them in the side store and their heads in the collection,
    so the resumable indexer writes a Matryoshka index unchanged."""

    def __init__(self, index: MatryoshkaIndex) -> None:
        self.index = index

    @property
    def collection(self) -> Any:
        """The Chroma collection of small vectors (whose kind sets the write limits)."""
        return self.index.collection

    def get(self, ids: Any = None, **kwargs: Any) -> Any:
        """``Collection.get`` (``ids`` first, as Chroma takes it), read in pages."""
        return paged_get(self.index.collection, ids=ids, **kwargs)

    def upsert(
        self,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        **kwargs: Any,
    ) -> None:
        full = np.asarray(embeddings, dtype=np.float32)
        self.index.store.upsert(ids, full)
        self.index.collection.upsert(
            ids=list(ids), embeddings=shrink(full, self.index.small_dims).tolist(), **kwargs
        )

    def delete(self, ids: Sequence[str]) -> None:
        self.index.delete(ids)
