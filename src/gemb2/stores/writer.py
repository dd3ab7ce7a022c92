"""The one way gemb2 writes records to a Chroma collection, within ``ChromaWriteLimits``.

Every write path (the indexer, Batch Mode's collect, ``gemb2 migrate``, LangChain's
``add_media_documents``) hands its records here. The writer checks them all before the
first call (a URI it cannot store and cannot drop is an ``InputError`` naming the record
and the limit), cuts a document over the byte limit on a UTF-8 boundary when the record's
metadata names the file it came from (``source`` and ``file_hash``: gemb2's piece
metadata, see ``gemb2.ingest.pieces.load_piece``, which rebuilds the full text from them)
and marks it ``document_truncated: true``, then sends the records in writes of at most
``max_records_per_write``, at most ``max_concurrent_writes`` in flight per collection in
this process. A record is never split across writes, and vectors are not touched (a
cut piece's vector is still that of its full text).

A failing write stops new ones; the writes already in flight finish, and ``on_written``
has been told of every write the store acknowledged, so a caller's count is the true
stored count when the failure is re-raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from gemb2.errors import InputError
from gemb2.stores.limits import ChromaWriteLimits, chroma_collection, client_max_batch

log = logging.getLogger(__name__)

TRUNCATED_KEY = "document_truncated"
# piece metadata that says where a record's full text lives (gemb2.ingest.loading writes it)
_SOURCE_KEYS = ("source", "file_hash")

_gates: dict[tuple[Any, int], threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


def _gate(collection: Any, size: int) -> threading.BoundedSemaphore:
    """One semaphore per collection (by its id) and bound, shared by every writer in the
    process: two index runs in threads on one collection still keep to the bound."""
    target = chroma_collection(collection)
    key = (str(getattr(target, "id", None) or id(target)), size)
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = threading.BoundedSemaphore(size)
        return gate


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` of at most ``max_bytes`` UTF-8 bytes (a character
    that straddles the cut is left out whole)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def _recoverable(meta: Mapping[str, Any] | None) -> bool:
    return meta is not None and all(meta.get(k) for k in _SOURCE_KEYS)


class ChromaWriter:
    """Writes records to ``collection`` (a Chroma collection, or anything with its
    ``upsert``/``add``/``delete``) within ``limits`` (default: by the collection's kind,
    see ``ChromaWriteLimits.for_collection``)."""

    def __init__(self, collection: Any, limits: ChromaWriteLimits | None = None) -> None:
        self.collection = collection
        self.limits = limits if limits is not None else ChromaWriteLimits.for_collection(collection)
        self._size: int | None = None
        self._sized = False

    @property
    def records_per_write(self) -> int | None:
        """Ours and Chroma's own ``max_batch_size``, whichever is smaller (asked once)."""
        if not self._sized:
            ours = self.limits.max_records_per_write
            theirs = client_max_batch(self.collection)
            bounds = [b for b in (ours, theirs) if b is not None]
            self._size = min(bounds) if bounds else None
            self._sized = True
        return self._size

    def upsert(
        self,
        ids: Sequence[str],
        embeddings: Any = None,
        *,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        documents: Sequence[str | None] | None = None,
        uris: Sequence[str | None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> int:
        """Upsert the records; returns how many were stored. ``on_written(n)`` is called
        (in the calling thread) after each acknowledged write of ``n`` records."""
        return self._write("upsert", ids, embeddings, metadatas, documents, uris, on_written)

    def add(
        self,
        ids: Sequence[str],
        embeddings: Any = None,
        *,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        documents: Sequence[str | None] | None = None,
        uris: Sequence[str | None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> int:
        """``add`` instead of ``upsert`` (Chroma ignores ids it already has)."""
        return self._write("add", ids, embeddings, metadatas, documents, uris, on_written)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete by id, at most ``records_per_write`` ids per call, one call at a time."""
        ids = list(ids)
        size = self.records_per_write or max(1, len(ids))
        gate = _gate(self.collection, self.limits.max_concurrent_writes)
        for start in range(0, len(ids), size):
            with gate:
                self.collection.delete(ids=ids[start : start + size])

    # ------------------------------------------------------------------ internals

    def _write(
        self,
        op: str,
        ids: Sequence[str],
        embeddings: Any,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        documents: Sequence[str | None] | None,
        uris: Sequence[str | None] | None,
        on_written: Callable[[int], None] | None,
    ) -> int:
        ids = list(ids)
        n = len(ids)
        for name, column in (
            ("embeddings", embeddings),
            ("metadatas", metadatas),
            ("documents", documents),
            ("uris", uris),
        ):
            if column is not None and len(column) != n:
                raise ValueError(f"{len(column)} {name} for {n} ids: one per record")
        if n == 0:
            return 0
        metas, docs, uri_list = self._checked(ids, metadatas, documents, uris)
        columns: dict[str, Any] = {"ids": ids}
        if embeddings is not None:
            columns["embeddings"] = embeddings
        for name, column in (("metadatas", metas), ("documents", docs), ("uris", uri_list)):
            if column is not None:
                columns[name] = column
        size = self.records_per_write or n
        starts = list(range(0, n, size))
        bound = self.limits.max_concurrent_writes
        gate = _gate(self.collection, bound)
        method = getattr(self.collection, op)

        def send(start: int) -> int:
            end = min(start + size, n)
            with gate:
                method(**{k: v[start:end] for k, v in columns.items()})
            return end - start

        def landed(count: int) -> None:
            if on_written is not None:
                on_written(count)

        # the same id twice: keep the order of the writes (the later record wins)
        workers = min(bound, len(starts)) if len(set(ids)) == n else 1
        if workers <= 1:
            stored = 0
            for start in starts:
                count = send(start)
                stored += count
                landed(count)
            return stored
        return self._parallel(send, starts, workers, landed)

    @staticmethod
    def _parallel(
        send: Callable[[int], int],
        starts: list[int],
        workers: int,
        landed: Callable[[int], None],
    ) -> int:
        """Up to ``workers`` writes at once; after a failure no new write starts, those in
        flight finish (and count), then the first failure is raised."""
        stored = 0
        failure: BaseException | None = None
        queue = iter(starts)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gemb2-chroma") as pool:
            running: set[Future[int]] = set()
            for start in queue:
                running.add(pool.submit(send, start))
                if len(running) >= workers:
                    break
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        failure = failure or exc
                        continue
                    stored += fut.result()
                    landed(fut.result())
                if failure is None:
                    for start in queue:
                        running.add(pool.submit(send, start))
                        if len(running) >= workers:
                            break
        if failure is not None:
            raise failure
        return stored

    def _checked(
        self,
        ids: list[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        documents: Sequence[str | None] | None,
        uris: Sequence[str | None] | None,
    ) -> tuple[list[Any] | None, list[str | None] | None, list[str | None] | None]:
        """Documents cut and URIs dropped where the limits say, every record checked
        before any write; metadata copied only where a mark is added."""
        max_doc, max_uri = self.limits.max_document_bytes, self.limits.max_uri_bytes
        metas: list[Any] | None = list(metadatas) if metadatas is not None else None
        docs = list(documents) if documents is not None else None
        uri_list = list(uris) if uris is not None else None
        if docs is not None and max_doc is not None:
            cut = 0
            for i, doc in enumerate(docs):
                if doc is None or len(doc) * 4 <= max_doc:  # no char is over 4 bytes
                    continue
                size = len(doc.encode("utf-8"))
                if size <= max_doc:
                    continue
                meta = metas[i] if metas is not None else None
                if not _recoverable(meta):
                    raise InputError(
                        f"the document of record {ids[i]!r} is {size:,} bytes and its "
                        "metadata names no source file (source, file_hash) to rebuild it "
                        "from; split it, or raise max_document_bytes "
                        "(--chroma-max-document-bytes)",
                        limit=f"{max_doc:,} bytes per document on this Chroma target",
                    )
                assert metas is not None and meta is not None
                docs[i] = cut_utf8(doc, max_doc)
                metas[i] = {**meta, TRUNCATED_KEY: True}
                cut += 1
            if cut:
                log.info("%d document(s) over %d bytes stored cut", cut, max_doc)
        if uri_list is not None and max_uri is not None:
            for i, uri in enumerate(uri_list):
                if uri is None or len(uri) * 4 <= max_uri:
                    continue
                size = len(uri.encode("utf-8"))
                if size <= max_uri:
                    continue
                meta = metas[i] if metas is not None else None
                if meta and meta.get("source") == uri:
                    uri_list[i] = None  # nothing lost: the metadata's source says it
                    continue
                raise InputError(
                    f"the uri of record {ids[i]!r} is {size:,} bytes and is not the "
                    "record's `source` metadata (which would keep it); shorten it, or raise "
                    "max_uri_bytes",
                    limit=f"{max_uri:,} bytes per URI on this Chroma target",
                )
        return metas, docs, uri_list


def write_records(
    collection: Any,
    ids: Sequence[str],
    embeddings: Any = None,
    *,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    documents: Sequence[str | None] | None = None,
    uris: Sequence[str | None] | None = None,
    limits: ChromaWriteLimits | None = None,
    on_written: Callable[[int], None] | None = None,
) -> int:
    """``ChromaWriter(collection, limits).upsert(...)``: upsert within the limits."""
    return ChromaWriter(collection, limits).upsert(
        ids,
        embeddings,
        metadatas=metadatas,
        documents=documents,
        uris=uris,
        on_written=on_written,
    )
