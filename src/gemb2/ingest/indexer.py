"""Index a folder of mixed media into a Chroma collection, resumably.

One record per file path and piece. A record's id is derived from the path, the
file's content hash, the model, the dimension and the piece number, and its ``source``
metadata names that path, so every copy of a file is found by search. Identical content
is paid for once: identical items in one call are sent once (the Embedder fans the
vector out), and a piece whose content (file hash and range) is already stored, under
any path, by this run or an earlier one, is written with that record's vector, no call.

Re-running over unchanged files finds them stored and makes no call; a changed file's
old pieces are deleted; a content-addressed vector cache makes a crashed run's finished
pieces free on the next run. Vectors are written batch by batch as they land, so a
failure loses nothing already paid for. A store operation that fails (a server that went
away, a refused write) raises ``StoreError`` with the report of what was stored.

A file name that is not valid UTF-8 is recorded in an escaped, reversible form (see
``loading.source_name``), since Chroma only takes valid UTF-8 strings.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemb2.engine.embedder import Embedder
from gemb2.engine.settings import API_KEY_ENV_VARS
from gemb2.engine.usage import Usage
from gemb2.errors import InputError, StoreError
from gemb2.ingest.loading import file_hash, load_file, source_name, walk
from gemb2.ingest.pieces import describe
from gemb2.inputs.media import Item
from gemb2.stores.limits import ChromaWriteLimits
from gemb2.stores.reads import paged_get
from gemb2.stores.writer import ChromaWriter


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
    items_written: int = 0  # records this run stored (a failure's report: what is stored)
    items_reused: int = 0  # of those, written with the stored vector of identical content
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed_stale: int = 0
    usage: Usage | None = None


LOOKUP_FILES = 256  # files whose stored records are fetched in one query


def record_id(
    source: str | os.PathLike[str], content_hash: str, model: str, dimensions: int, piece: int
) -> str:
    """A record per path and piece: two copies of one file get two records."""
    h = hashlib.sha256(os.fspath(source).encode("utf-8", "surrogatepass") + b"\0")
    h.update(f"{content_hash}|{model}|{dimensions}|{piece}".encode())
    return h.hexdigest()[:32]


def plan_file(path: Path, embedder: Embedder, digest: str) -> FilePlan:
    """Split the file into items that fit the model's limits, each with its record id."""
    s = embedder.settings
    plan = FilePlan(path=path, file_hash=digest)
    for item in load_file(
        path, s.resolved_limits, use_video_audio=s.use_video_audio, digest=digest, defer=True
    ):
        meta = {**item.metadata, "model": embedder.model, "dimensions": embedder.dimensions}
        plan.items.append(Item(parts=item.parts, metadata=meta))
        plan.ids.append(record_id(path, digest, embedder.model, embedder.dimensions, meta["piece"]))
    return plan


def index_paths(
    paths: Iterable[str | Path],
    collection: Any,
    embedder: Embedder,
    *,
    chunk_items: int = 200,
    progress: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
    report: IndexReport | None = None,
    write_limits: ChromaWriteLimits | None = None,
) -> IndexReport:
    """Embed every new or changed file under ``paths`` into ``collection``.

    Media pieces are read from disk only when their call is sent (``load_file(defer=
    True)``) under the embedder's byte budgets. ``gemb2 index`` also calls
    ``bound_malloc()`` first (a process-wide setting, so library code leaves it to the
    program), so a long video's peak memory is about the pieces in flight.

    ``report`` (optional) is filled in as the run goes, so a caller still has the
    counts when an error ends the run; a failing store raises ``StoreError``, whose
    ``report`` is the same object.

    Writes keep to ``write_limits`` (default: Chroma Cloud's quotas when the collection is
    on a server, none of ours when embedded; see ``gemb2.stores.limits``): a text piece
    whose document is over the byte limit is stored cut and marked
    ``document_truncated``, its vector still that of the full text, which
    ``gemb2.ingest.pieces.load_piece(metadata)`` rebuilds from the file."""
    report = report if report is not None else IndexReport()
    report.usage = embedder.usage
    store = _Store(collection, report, _secrets(embedder), write_limits)
    pending: list[tuple[str, Item]] = []
    obsolete: list[str] = []  # a re-planned file's records its plan no longer has

    def flush() -> None:
        batch = list(pending)
        pending.clear()
        known = _stored_vectors(store, [it for _, it in batch], embedder) if batch else {}
        reused = [
            (i, known[k]) for i, k in enumerate(_content_key(it) for _, it in batch) if k in known
        ]
        if reused:
            store.write([batch[i] for i, _ in reused], [v for _, v in reused])
            report.items_reused += len(reused)
        done = {i for i, _ in reused}
        todo = [i for i in range(len(batch)) if i not in done]
        if todo:

            def landed(indices: list[int], vectors: list[list[float]]) -> None:
                store.write([batch[todo[i]] for i in indices], vectors)

            embedder.embed(
                [batch[i][1] for i in todo], role="document", progress=progress, on_batch=landed
            )
        if obsolete:  # after the new records are written: nothing is missing meanwhile
            store.delete(list(obsolete))
            report.removed_stale += len(obsolete)
            obsolete.clear()

    seen: set[str] = set()

    def skip(source: str, reason: str) -> None:
        _skip(report, on_skip, source, reason)

    for chunk in _chunks(walk(paths, on_skip=skip), LOOKUP_FILES):
        hashed: list[tuple[Path, str, tuple[str, bool]]] = []
        for path in chunk:
            if str(path) in seen:  # named twice (a file and its folder): index it once
                continue
            seen.add(str(path))
            try:
                hashed.append((path, file_hash(path), source_name(path)))
            except OSError as exc:
                _skip(report, on_skip, str(path), f"cannot read: {exc.strerror or exc}")
        stored = _stored(store, [name for _, _, name in hashed])
        for path, digest, name in hashed:
            ids, metadatas = stored[name]
            stale = [
                rid
                for rid, meta in zip(ids, metadatas, strict=True)
                if meta.get("file_hash") != digest
            ]
            current = [rid for rid in ids if rid not in stale]
            if stale:
                store.delete(stale)
                report.removed_stale += len(stale)
            metas = [m for m in metadatas if m.get("file_hash") == digest]
            if current and metas and len(current) == int(metas[0].get("pieces", -1)):
                report.files_unchanged += 1
                continue
            try:
                plan = plan_file(path, embedder, digest)
                embedder.prepare(plan.items)  # check limits now: one bad file is skipped alone
            except InputError as exc:
                _skip(report, on_skip, str(path), exc.reason)
                continue
            report.files_indexed += 1
            planned, have = set(plan.ids), set(current)
            obsolete.extend(rid for rid in current if rid not in planned)
            # pieces stored by a run that ended mid-file are not written again
            pending.extend(
                (r, it) for r, it in zip(plan.ids, plan.items, strict=True) if r not in have
            )
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
    store: _Store, names: list[tuple[str, bool]]
) -> dict[tuple[str, bool], tuple[list[str], list[dict[str, Any]]]]:
    """Ids and metadata already stored for each source file (by its recorded ``source``
    and whether that is escaped): one query per chunk of files, not one per file (a
    re-run over 10,000 unchanged files would spend seconds on lookups)."""
    found: dict[tuple[str, bool], tuple[list[str], list[dict[str, Any]]]] = {
        n: ([], []) for n in names
    }
    if not names:
        return found
    sources = sorted({source for source, _ in names})
    res = store.get(where={"source": {"$in": sources}}, include=["metadatas"])
    for rid, meta in zip(res["ids"], res["metadatas"] or [], strict=False):
        meta = meta or {}
        entry = found.get((str(meta.get("source")), bool(meta.get("source_escaped"))))
        if entry is not None:
            entry[0].append(rid)
            entry[1].append(dict(meta))
    return found


_RANGE_KEYS = ("page_start", "page_end", "start_seconds", "end_seconds", "char_start", "char_end")


def _content_key(item: Item | Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two pieces the same content: the file's hash and the piece's place and
    range in it (pieces of equal files are cut alike)."""
    meta = item.metadata if isinstance(item, Item) else item
    ranges = tuple(
        round(float(meta[k]), 6) if meta.get(k) is not None else None for k in _RANGE_KEYS
    )
    return (
        meta.get("file_hash"),
        meta.get("piece"),
        meta.get("pieces"),
        meta.get("modality"),
        meta.get("mime_type"),
        ranges,
    )


def _stored_vectors(
    store: _Store, items: list[Item], embedder: Embedder
) -> dict[tuple[Any, ...], list[float]]:
    """Vectors already stored for the same content as ``items`` (under any path), by
    content key, from records of this model and dimension whose vector has that
    dimension (a Matryoshka index stores shortened heads: those are not reused). The
    metadata is looked up first, so only one vector per content is fetched."""
    hashes = sorted({str(it.metadata["file_hash"]) for it in items})
    res = store.get(where={"file_hash": {"$in": hashes}}, include=["metadatas"])
    chosen: dict[tuple[Any, ...], str] = {}
    for rid, meta in zip(res["ids"], res.get("metadatas") or [], strict=False):
        meta = meta or {}
        if meta.get("model") == embedder.model and meta.get("dimensions") == embedder.dimensions:
            chosen.setdefault(_content_key(meta), rid)
    if not chosen:
        return {}
    got = store.get(ids=list(chosen.values()), include=["embeddings"])
    embeddings = got.get("embeddings")
    if embeddings is None:
        return {}
    vectors = dict(zip(got["ids"], embeddings, strict=False))
    found: dict[tuple[Any, ...], list[float]] = {}
    for key, rid in chosen.items():
        vector = vectors.get(rid)
        if vector is not None and len(vector) == embedder.dimensions:
            found[key] = [float(x) for x in vector]
    return found


class _Store:
    """The collection's reads, writes and deletes; any failure is raised as ``StoreError``
    saying what failed, what this run stored, and that a re-run resumes. Writes and
    deletes go through one ``ChromaWriter`` (its limits: records per write, document and
    URI bytes, writes in flight)."""

    def __init__(
        self,
        collection: Any,
        report: IndexReport,
        secrets: Sequence[str],
        limits: ChromaWriteLimits | None = None,
    ) -> None:
        self.collection = collection
        self.report = report
        self.secrets = secrets
        self.writer = ChromaWriter(collection, limits)

    def get(self, **kwargs: Any) -> Any:
        return self._do(
            "reading from", lambda: paged_get(self.collection, self.writer.limits, **kwargs)
        )

    def delete(self, ids: list[str]) -> None:
        self._do("deleting from", lambda: self.writer.delete(ids))

    def write(self, records: list[tuple[str, Item]], vectors: list[list[float]]) -> None:
        def written(n: int) -> None:  # each acknowledged write, as it lands
            self.report.items_written += n

        self._do(
            "writing to",
            lambda: self.writer.upsert(
                [rid for rid, _ in records],
                vectors,
                metadatas=[dict(it.metadata) for _, it in records],
                documents=[describe(it) for _, it in records],
                uris=[str(it.metadata["source"]) for _, it in records],
                on_written=written,
            ),
        )

    def _do(self, doing: str, op: Callable[[], Any]) -> Any:
        try:
            return op()
        except InputError:
            raise  # a record these limits cannot take: its own clear message
        except Exception as exc:
            n = self.report.items_written
            raise StoreError(
                f"the vector store failed while {doing} it ({_brief(exc, self.secrets)}); "
                f"{n} item{'' if n == 1 else 's'} stored by this run before the failure; "
                "index the same paths again to resume (stored items are not embedded again)",
                report=self.report,
            ) from exc


def _secrets(embedder: Embedder) -> list[str]:
    """Values that must not reach a message: the configured API key, any key in the
    environment gemb2 or Chroma's client reads."""
    names = (*API_KEY_ENV_VARS, "CHROMA_CLIENT_AUTH_CREDENTIALS", "CHROMA_AUTH_TOKEN")
    found = [os.environ.get(n) or "" for n in names]
    found.append(embedder.settings.resolve_api_key()[0] or "")
    return [v for v in found if len(v) >= 4]


_URL_USERINFO = re.compile(r"(\w+://)[^/\s@]+@")
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")


def _brief(exc: BaseException, secrets: Sequence[str]) -> str:
    """The store's error on one short line, with no credentials in it."""
    text = " ".join(str(exc).split()) or "no message"
    text = _GOOGLE_KEY.sub("***", _URL_USERINFO.sub(r"\1***@", text))
    for secret in secrets:
        text = text.replace(secret, "***")
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}"


def _skip(
    report: IndexReport, on_skip: Callable[[str, str], None] | None, source: str, reason: str
) -> None:
    report.skipped.append((source, reason))
    if on_skip:
        on_skip(source, reason)
