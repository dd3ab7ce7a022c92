"""Index a folder of mixed media into a Chroma collection, resumably.

Record ids are derived from the file's content hash, model, dimension and piece
number, so re-running over unchanged files finds them stored and makes no call;
a changed file's old pieces are deleted; a content-addressed vector cache makes a
crashed run's finished pieces free on the next run. Vectors are written batch by
batch as they land, so a failure loses nothing already paid for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .embedder import Embedder
from .errors import InputError
from .loading import file_hash, label, load_file, walk
from .media import Item
from .usage import Usage


@dataclass
class FilePlan:
    """One source file: its hash, and the items its pieces became."""

    path: Path
    file_hash: str
    items: list[Item] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@dataclass
class IndexReport:
    files_indexed: int = 0
    files_unchanged: int = 0
    items_written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed_stale: int = 0
    usage: Usage | None = None


LOOKUP_FILES = 256  # files whose stored records are fetched in one query


def record_id(content_hash: str, model: str, dimensions: int, piece: int) -> str:
    return hashlib.sha256(f"{content_hash}|{model}|{dimensions}|{piece}".encode()).hexdigest()[:32]


def plan_file(path: Path, embedder: Embedder, digest: str) -> FilePlan:
    """Split the file into items that fit the model's limits, each with its record id."""
    s = embedder.settings
    plan = FilePlan(path=path, file_hash=digest)
    for item in load_file(
        path, s.resolved_limits, use_video_audio=s.use_video_audio, digest=digest, defer=True
    ):
        meta = {**item.metadata, "model": embedder.model, "dimensions": embedder.dimensions}
        plan.items.append(Item(parts=item.parts, metadata=meta))
        plan.ids.append(record_id(digest, embedder.model, embedder.dimensions, meta["piece"]))
    return plan


def describe(item: Item) -> str:
    """Chroma stores a document string per record: the text, or a label for media."""
    return item.text if item.is_text_only else label(item.metadata)


def index_paths(
    paths: Iterable[str | Path],
    collection: Any,
    embedder: Embedder,
    *,
    chunk_items: int = 200,
    progress: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
) -> IndexReport:
    """Embed every new or changed file under ``paths`` into ``collection``.

    Media pieces are read from disk only when their call is sent (``load_file(defer=
    True)``) under the embedder's byte budgets. ``gemb2 index`` also calls
    ``bound_malloc()`` first (a process-wide setting, so library code leaves it to the
    program), so a long video's peak memory is about the pieces in flight."""
    report = IndexReport(usage=embedder.usage)
    pending: list[tuple[str, Item]] = []

    def flush() -> None:
        if not pending:
            return
        batch = list(pending)
        pending.clear()

        def store(indices: list[int], vectors: list[list[float]]) -> None:
            chosen = [batch[i] for i in indices]
            collection.upsert(
                ids=[rid for rid, _ in chosen],
                embeddings=vectors,
                metadatas=[dict(it.metadata) for _, it in chosen],
                documents=[describe(it) for _, it in chosen],
                uris=[str(it.metadata["source"]) for _, it in chosen],
            )
            report.items_written += len(chosen)

        embedder.embed([it for _, it in batch], role="document", progress=progress, on_batch=store)

    seen: set[str] = set()

    def skip(source: str, reason: str) -> None:
        _skip(report, on_skip, source, reason)

    for chunk in _chunks(walk(paths, on_skip=skip), LOOKUP_FILES):
        hashed: list[tuple[Path, str]] = []
        for path in chunk:
            if str(path) in seen:  # named twice (a file and its folder): index it once
                continue
            seen.add(str(path))
            try:
                hashed.append((path, file_hash(path)))
            except OSError as exc:
                _skip(report, on_skip, str(path), f"cannot read: {exc.strerror or exc}")
        stored = _stored(collection, [str(p) for p, _ in hashed])
        for path, digest in hashed:
            source = str(path)
            ids, metadatas = stored[source]
            stale = [
                rid
                for rid, meta in zip(ids, metadatas, strict=True)
                if meta.get("file_hash") != digest
            ]
            current = [rid for rid in ids if rid not in stale]
            if stale:
                collection.delete(ids=stale)
                report.removed_stale += len(stale)
            metas = [m for m in metadatas if m.get("file_hash") == digest]
            if current and metas and len(current) == int(metas[0].get("pieces", -1)):
                report.files_unchanged += 1
                continue
            try:
                plan = plan_file(path, embedder, digest)
                embedder.prepare(plan.items)  # check limits now: one bad file is skipped alone
            except InputError as exc:
                _skip(report, on_skip, source, exc.reason)
                continue
            report.files_indexed += 1
            pending.extend(zip(plan.ids, plan.items, strict=True))
            if len(pending) >= chunk_items:
                flush()
    flush()
    return report


_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def bound_malloc() -> bool:
    """Fix glibc's mmap threshold at its default (128 KiB), which turns off its dynamic
    raise: after a large buffer (a piece, its base64, the request JSON) is freed, glibc
    would otherwise serve the next ones from its heaps and keep them, one set per
    thread, long after. Large buffers then go back to the system when freed. Once per
    process; a no-op where the C library is not glibc."""
    global _MALLOC_BOUND
    if _MALLOC_BOUND is None:
        _MALLOC_BOUND = False
        try:
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "mallopt"):
                _MALLOC_BOUND = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass
    return _MALLOC_BOUND


_M_MMAP_THRESHOLD = -3
_MALLOC_BOUND: bool | None = None


def _chunks(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stored(
    collection: Any, sources: list[str]
) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """Ids and metadata already stored for each source file: one query per chunk of files,
    not one per file (a re-run over 10,000 unchanged files would spend seconds on lookups)."""
    found: dict[str, tuple[list[str], list[dict[str, Any]]]] = {s: ([], []) for s in sources}
    if not sources:
        return found
    res = collection.get(where={"source": {"$in": sources}}, include=["metadatas"])
    for rid, meta in zip(res["ids"], res["metadatas"] or [], strict=False):
        entry = found.get(str((meta or {}).get("source")))
        if entry is not None:
            entry[0].append(rid)
            entry[1].append(dict(meta or {}))
    return found


def _skip(
    report: IndexReport, on_skip: Callable[[str, str], None] | None, source: str, reason: str
) -> None:
    report.skipped.append((source, reason))
    if on_skip:
        on_skip(source, reason)
