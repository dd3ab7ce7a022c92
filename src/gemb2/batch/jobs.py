"""Batch Mode: the Gemini API's own bulk pipeline, at about half the online price.

Items are checked and conditioned by ``Embedder.prepare`` (so a batch request holds
exactly the content an online call would send), then submitted as one job: inline
for small jobs, or as a JSONL file uploaded through the Files API for large ones or
when items need different request options. The job id, the caller's keys and payloads
are kept in a ``JobStore`` (SQLite), so a later process can collect the results.

Collecting maps every answer back to its key; an item the service failed is reported,
not fatal. Whether Batch Mode accepts media for the multimodal models is undocumented,
so by default (``media="online"``) media items are embedded online at submit time;
with ``media="batch"`` they go into the job, and any the service refuses are embedded
online at collect time and reported as such.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import sqlite3
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from google.genai import types

from gemb2.engine import retry
from gemb2.engine import vectors as vec
from gemb2.engine.embedder import Embedder
from gemb2.errors import (
    APIError,
    ConfigError,
    Gemb2Error,
    InputError,
    ResponseMismatchError,
    RetryExhaustedError,
)
from gemb2.ingest.loading import file_hash, load_file, source_path
from gemb2.inputs.media import Item, ItemLike, Media, as_items
from gemb2.model.catalog import BATCH_DISCOUNT, PRICE_PER_MILLION_TOKENS
from gemb2.model.tasks import Role
from gemb2.transport.genai import genai_client
from gemb2.transport.wire import embed_request, item_json

log = logging.getLogger("gemb2")

T = TypeVar("T")
MediaPolicy = Literal["online", "batch"]
SubmitMode = Literal["auto", "inline", "file"]
OnOnline = Callable[[list[str], list[list[float]]], None]

ENDED_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)
SUCCEEDED = "JOB_STATE_SUCCEEDED"
# per-item codes meaning "this input is not accepted here": google.rpc INVALID_ARGUMENT,
# FAILED_PRECONDITION, UNIMPLEMENTED and their HTTP twins
NOT_ACCEPTED_CODES = frozenset({3, 9, 12, 400, 501})
INLINE_MAX_BYTES = 19_000_000  # the service takes inline batch requests up to about 20 MB
FILE_MAX_BYTES = 2_000_000_000  # and input files up to 2 GB
_LINE_OVERHEAD = 160  # JSON around one request: key, field names, options


class JobPendingError(Gemb2Error):
    """The job has not finished yet; collect it later (or wait for it)."""

    def __init__(self, name: str, state: str) -> None:
        self.name = name
        self.state = state
        super().__init__(
            f"batch job {name} is {short_state(state)}; collect it once it has SUCCEEDED "
            "(Batch Mode may take up to 24 h)"
        )


class JobFailedError(Gemb2Error):
    """The whole job ended without results (FAILED, CANCELLED or EXPIRED): resubmit it."""

    def __init__(self, name: str, state: str, message: str | None = None) -> None:
        self.name = name
        self.state = state
        why = f": {message}" if message else ""
        super().__init__(
            f"batch job {name} ended {short_state(state)} without results{why}; "
            "submit the items again"
        )


def short_state(state: str) -> str:
    return state.removeprefix("JOB_STATE_")


def money(usd: float) -> str:
    """Dollars with enough digits that a small job does not read as free."""
    return f"${usd:.4f}" if usd >= 0.01 or usd == 0 else f"${usd:.6f}"


# --- records ---------------------------------------------------------------------------------


@dataclass
class JobRecord:
    """One submitted job as the store keeps it."""

    name: str
    model: str
    dimensions: int
    normalize: bool
    mode: str  # "inline" or "file"
    count: int
    state: str
    created: float
    updated: float
    display_name: str = ""
    input_file: str | None = None
    collected: float | None = None
    stored: int = 0
    failed: int = 0
    cost_online: float = 0.0
    cost_batch: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def short_state(self) -> str:
        return short_state(self.state)


@dataclass(frozen=True)
class ItemFailure:
    """An item the job could not embed, with the service's reason."""

    key: str
    message: str
    code: int | None = None
    payload: Any = None


@dataclass
class BatchResult:
    """What a collected job gave: vectors by key (in submission order) and failures."""

    job: JobRecord
    keys: list[str] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    fallback: list[ItemFailure] = field(default_factory=list)  # embedded online instead
    billed_tokens: int | None = None

    def vector_of(self, key: str) -> list[float]:
        return self.vectors[self.keys.index(key)]


@dataclass(frozen=True)
class CostEstimate:
    """Estimated input tokens by modality and what they cost online and in Batch Mode."""

    tokens: Mapping[str, int]
    items: int = 0

    def cost(self, *, batch_mode: bool) -> float:
        factor = BATCH_DISCOUNT if batch_mode else 1.0
        return sum(
            PRICE_PER_MILLION_TOKENS.get(m, 0.0) * t / 1e6 * factor for m, t in self.tokens.items()
        )

    @property
    def online(self) -> float:
        return self.cost(batch_mode=False)

    @property
    def batch(self) -> float:
        return self.cost(batch_mode=True)

    def table(self) -> list[str]:
        """Rows for people: per modality and total, online next to Batch Mode."""
        rows = [f"  {'modality':<9}{'tokens':>12}{'online':>13}{'Batch Mode':>13}"]
        for m, t in sorted(self.tokens.items()):
            online = PRICE_PER_MILLION_TOKENS.get(m, 0.0) * t / 1e6
            rows.append(f"  {m:<9}{t:>12,}{money(online):>13}{money(online * BATCH_DISCOUNT):>13}")
        total = sum(self.tokens.values())
        rows.append(f"  {'total':<9}{total:>12,}{money(self.online):>13}{money(self.batch):>13}")
        saved = self.online - self.batch
        share = saved / self.online * 100 if self.online else (1 - BATCH_DISCOUNT) * 100
        rows.append(f"  Batch Mode saves {money(saved)} ({share:.0f}%) at list prices")
        return rows


@dataclass
class Submission:
    """What ``submit`` did: the jobs it created and what it embedded online right away."""

    jobs: list[JobRecord]
    estimate: CostEstimate
    online_keys: list[str] = field(default_factory=list)
    online_estimate: CostEstimate = field(default_factory=lambda: CostEstimate({}))
    cached: int = 0
    refused_media: str | None = None  # why Batch Mode refused a job for its media, if it did


# --- the job store ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    job TEXT NOT NULL, pos INTEGER NOT NULL, key TEXT NOT NULL, payload TEXT,
    cache_key TEXT, fallback TEXT, PRIMARY KEY (job, pos)
);
CREATE INDEX IF NOT EXISTS items_key ON items (key);
"""


@dataclass(frozen=True)
class StoredItem:
    pos: int
    key: str
    payload: Any
    cache_key: str | None
    fallback: dict[str, Any] | None


class JobStore:
    """Submitted jobs and their items' keys and payloads, in SQLite, shared across processes."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def add(self, job: JobRecord, items: Iterable[StoredItem]) -> None:
        rows = [
            (
                job.name,
                it.pos,
                it.key,
                json.dumps(it.payload),
                it.cache_key,
                json.dumps(it.fallback) if it.fallback is not None else None,
            )
            for it in items
        ]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?)",
                    (job.name, _dump_record(job), job.created),
                )
                self._db.execute("DELETE FROM items WHERE job = ?", (job.name,))
                self._db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def update(self, job: JobRecord) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET record = ? WHERE name = ?", (_dump_record(job), job.name)
            )

    def get(self, name: str) -> JobRecord:
        """A job by name; ``batches/`` may be left off."""
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM jobs WHERE name = ? OR name = ?",
                (name, f"batches/{name}"),
            ).fetchone()
        if row is None:
            raise InputError(
                f"no batch job {name!r} in {self.path}; `gemb2 jobs` lists the known jobs"
            )
        return _load_record(row[0])

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM jobs ORDER BY created").fetchall()
        return [_load_record(r[0]) for r in rows]

    def items(self, name: str) -> list[StoredItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT pos, key, payload, cache_key, fallback FROM items WHERE job = ? "
                "ORDER BY pos",
                (name,),
            ).fetchall()
        return [
            StoredItem(
                pos,
                key,
                json.loads(payload) if payload else None,
                cache_key,
                json.loads(fb) if fb else None,
            )
            for pos, key, payload, cache_key, fb in rows
        ]

    def pending_keys(
        self, keys: Iterable[str], *, context: Mapping[str, Any] | None = None
    ) -> set[str]:
        """Keys already waiting in a job not yet collected (whose context matches, if given)."""
        wanted = list(dict.fromkeys(keys))
        ended = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
        pending = {
            j.name
            for j in self.jobs()
            if j.collected is None
            and j.state not in ended
            and all(j.context.get(k) == v for k, v in (context or {}).items())
        }
        if not pending or not wanted:
            return set()
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, job FROM items WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                found.update(k for k, j in rows if j in pending)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"JobStore({self.path!r})"


def _dump_record(job: JobRecord) -> str:
    return json.dumps(job.__dict__)


def _load_record(text: str) -> JobRecord:
    data = json.loads(text)
    known = JobRecord.__dataclass_fields__
    return JobRecord(**{k: v for k, v in data.items() if k in known})


# --- the engine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    key: str
    item: Item
    prepared: Any  # embedder._Prepared
    payload: Any


class BatchEmbedder:
    """Submits items to Batch Mode with an ``Embedder``'s model, dimension and task,
    and collects the vectors later, in this process or another (give both the same
    ``JobStore`` file; the default store lives in memory, for this process only).

    >>> batch = BatchEmbedder(Embedder(dimensions=768), JobStore("jobs.sqlite"))  # doctest: +SKIP
    >>> sub = batch.submit(texts, keys=ids)  # doctest: +SKIP
    >>> result = batch.collect(sub.jobs[0].name)  # later, maybe elsewhere  # doctest: +SKIP
    """

    def __init__(
        self,
        embedder: Embedder,
        store: JobStore | None = None,
        *,
        media: MediaPolicy = "online",
        inline_max_bytes: int = INLINE_MAX_BYTES,
        file_max_bytes: int = FILE_MAX_BYTES,
    ) -> None:
        if embedder.settings.vertexai:
            raise ConfigError(
                "Batch Mode for embeddings is a Gemini Developer API feature; the SDK does not "
                "offer it on Vertex AI. Use online calls, or an API key instead of vertexai=True"
            )
        if media not in ("online", "batch"):
            raise ConfigError(f"media must be 'online' or 'batch', not {media!r}")
        self.embedder = embedder
        self.store = store if store is not None else JobStore()
        self.media: MediaPolicy = media
        self.inline_max_bytes = inline_max_bytes
        self.file_max_bytes = file_max_bytes

    def accepts(self, item: ItemLike) -> bool:
        """Whether ``submit`` puts this item in a job (False: it is embedded online)."""
        return self.media == "batch" or Item.of(item).is_text_only

    # -- submit -----------------------------------------------------------------------------

    def submit(
        self,
        inputs: Iterable[ItemLike],
        *,
        keys: Sequence[str] | None = None,
        payloads: Sequence[Any] | None = None,
        role: Role = "document",
        task: str | None = None,
        mode: SubmitMode = "auto",
        context: Mapping[str, Any] | None = None,
        on_online: OnOnline | None = None,
    ) -> Submission:
        """Check every item, then create the job(s). Items answered from the cache, and
        media under ``media="online"``, are embedded now and handed to ``on_online(keys,
        vectors)``. ``payloads`` (JSON-serialisable) come back with the vectors on collect."""
        items = as_items(inputs)
        keys = [str(i) for i in range(len(items))] if keys is None else [str(k) for k in keys]
        if len(keys) != len(items):
            raise InputError(f"{len(items)} items but {len(keys)} keys")
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        if dupes:
            raise InputError(f"keys must be unique; repeated: {dupes[:5]}")
        if payloads is not None and len(payloads) != len(items):
            raise InputError(f"{len(items)} items but {len(payloads)} payloads")
        if mode not in ("auto", "inline", "file"):
            raise ConfigError(f"mode must be 'auto', 'inline' or 'file', not {mode!r}")
        prepared = self.embedder.prepare(items, role=role, task=task)  # limits, before any call
        entries = [
            _Entry(k, it, p, payloads[i] if payloads is not None else None)
            for i, (k, it, p) in enumerate(zip(keys, items, prepared, strict=True))
        ]
        cached = self._from_cache(entries, on_online)
        todo = [e for e in entries if e.key not in cached]
        online = [e for e in todo if not self.accepts(e.item)]
        batched = [e for e in todo if self.accepts(e.item)]
        sub = Submission(
            jobs=[],
            estimate=_estimate(batched),
            online_keys=[e.key for e in online],
            online_estimate=_estimate(online),
            cached=len(cached),
        )
        if online:
            self._embed_online(online, role, task, on_online)
        for group, inline in self._plan(batched, mode):
            try:
                sub.jobs.append(self._create(group, inline, dict(context or {})))
            except APIError as exc:
                media = [e for e in group if not e.item.is_text_only]
                if exc.code != 400 or not media:
                    raise
                # the service refused the job for its media: those go online, the rest again
                log.warning(
                    "Batch Mode refused a job holding %d media items (%s); embedding them "
                    "online and submitting the other %d items",
                    len(media),
                    exc.message,
                    len(group) - len(media),
                )
                self._embed_online(media, role, task, on_online)
                sub.online_keys += [e.key for e in media]
                sub.refused_media = exc.message
                text = [e for e in group if e.item.is_text_only]
                if text:
                    sub.jobs.append(self._create(text, inline, dict(context or {})))
        if sub.refused_media is not None:  # the estimates follow where the items went
            went_online = set(sub.online_keys)
            sub.estimate = _estimate([e for e in batched if e.key not in went_online])
            sub.online_estimate = _estimate([e for e in todo if e.key in went_online])
        return sub

    def _from_cache(self, entries: list[_Entry], on_online: OnOnline | None) -> set[str]:
        cache = self.embedder.cache
        if cache is None or not entries:
            return set()
        hits = cache.get_many(e.prepared.key for e in entries)
        done = [e for e in entries if e.prepared.key in hits]
        if done:
            self.embedder.usage.record_cached(len(done))
            if on_online:
                on_online([e.key for e in done], [hits[e.prepared.key] for e in done])
        return {e.key for e in done}

    def _embed_online(
        self, entries: list[_Entry], role: Role, task: str | None, on_online: OnOnline | None
    ) -> None:
        def land(indices: list[int], vectors: list[list[float]]) -> None:
            if on_online:
                on_online([entries[i].key for i in indices], vectors)

        self.embedder.embed([e.item for e in entries], role=role, task=task, on_batch=land)

    def _plan(self, entries: list[_Entry], mode: SubmitMode) -> list[tuple[list[_Entry], bool]]:
        """(items, inline?) per job: one inline job when it fits and every item shares its
        request options (an inline job has one config); else JSONL file jobs of at most
        ``file_max_bytes`` each (every line carries its own options)."""
        if not entries:
            return []
        sizes = [_line_size(e) for e in entries]
        one_config = len({(e.prepared.task_type, e.prepared.title) for e in entries}) == 1
        fits_inline = one_config and sum(sizes) <= self.inline_max_bytes
        if mode == "inline" and not fits_inline:
            why = (
                "items need different request options (task type or title)"
                if not one_config
                else f"the request would be about {sum(sizes) / 1e6:.1f} MB, over "
                f"{self.inline_max_bytes / 1e6:.0f} MB"
            )
            raise InputError(f"cannot submit inline: {why}; use mode='file' or 'auto'")
        if mode == "inline" or (mode == "auto" and fits_inline):
            return [(entries, True)]
        groups: list[list[_Entry]] = [[]]
        total = 0
        for e, size in zip(entries, sizes, strict=True):
            if groups[-1] and total + size > self.file_max_bytes:
                groups.append([])
                total = 0
            groups[-1].append(e)
            total += size
        return [(g, False) for g in groups]

    def _create(self, entries: list[_Entry], inline: bool, context: dict[str, Any]) -> JobRecord:
        s = self.embedder.settings
        client = genai_client(self.embedder.transport)
        display = f"gemb2-{len(entries)}-items-{secrets.token_hex(4)}"
        input_file = None
        if inline:
            first = entries[0].prepared
            src = types.EmbeddingsBatchJobSource(
                inlined_requests=types.EmbedContentBatch(
                    contents=[e.prepared.content for e in entries],
                    config=types.EmbedContentConfig(
                        task_type=first.task_type,
                        title=first.title,
                        output_dimensionality=self.embedder.dimensions,
                    ),
                )
            )
        else:
            input_file = self._upload(entries, display)
            src = types.EmbeddingsBatchJobSource(file_name=input_file)
        try:
            job = self._call_create(client, src, display)
        except BaseException:
            if input_file:
                self._delete_file(input_file)
            raise
        estimate = _estimate(entries)
        now = time.time()
        record = JobRecord(
            name=str(job.name),
            model=s.spec.id,
            dimensions=self.embedder.dimensions,
            normalize=s.normalize,
            mode="inline" if inline else "file",
            count=len(entries),
            state=_state(job),
            created=now,
            updated=now,
            display_name=display,
            input_file=input_file,
            cost_online=estimate.online,
            cost_batch=estimate.batch,
            context=context,
        )
        self.store.add(
            record,
            (
                StoredItem(
                    pos=i,
                    key=e.key,
                    payload=e.payload,
                    cache_key=e.prepared.key,
                    fallback=_fallback_ref(e) if not e.item.is_text_only else None,
                )
                for i, e in enumerate(entries)
            ),
        )
        log.info("submitted %s: %d items (%s)", record.name, record.count, record.mode)
        return record

    def _upload(self, entries: list[_Entry], display: str) -> str:
        dims = self.embedder.dimensions
        client = genai_client(self.embedder.transport)
        with tempfile.TemporaryDirectory(prefix="gemb2-batch-") as tmp:
            path = Path(tmp) / f"{display}.jsonl"
            with path.open("wb") as f:
                for e in entries:
                    f.write(json.dumps(_line(e, dims), separators=(",", ":")).encode() + b"\n")
            uploaded = self._retrying(
                "upload the batch input",
                lambda: client.files.upload(
                    file=str(path),
                    config=types.UploadFileConfig(mime_type="jsonl", display_name=display),
                ),
            )
        return str(uploaded.name)

    def _call_create(
        self, client: Any, src: types.EmbeddingsBatchJobSource, display: str
    ) -> types.BatchJob:
        def create() -> types.BatchJob:
            with warnings.catch_warnings():  # the SDK marks create_embeddings experimental
                warnings.simplefilter("ignore")
                return client.batches.create_embeddings(
                    model=self.embedder.settings.spec.id,
                    src=src,
                    config=types.CreateEmbeddingsBatchJobConfig(display_name=display),
                )

        def adopt() -> types.BatchJob | None:
            # a create whose answer was lost may still have made the job: never pay twice
            for job in client.batches.list():
                if job.display_name == display:
                    return job
            return None

        return self._retrying("create the batch job", create, before_retry=adopt)

    # -- poll and collect ---------------------------------------------------------------------

    def refresh(self, name: str) -> JobRecord:
        """Ask the service for the job's state and remember it."""
        record = self.store.get(name)
        job = self._get(record.name)
        record.state, record.updated = _state(job), time.time()
        self.store.update(record)
        return record

    def wait(
        self,
        name: str,
        *,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        on_poll: Callable[[JobRecord], None] | None = None,
    ) -> JobRecord:
        """Poll until the job has ended (or ``timeout`` seconds pass: JobPendingError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.refresh(name)
            if on_poll:
                on_poll(record)
            if record.done:
                return record
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise JobPendingError(record.name, record.state)
            time.sleep(poll_interval if left is None else min(poll_interval, left))

    def collect(self, name: str, *, fallback_online: bool = True) -> BatchResult:
        """Vectors of a finished job mapped back to their keys; failed items reported.

        Items holding media that the service did not accept are embedded online when
        ``fallback_online`` (and listed in ``result.fallback``)."""
        record = self.store.get(name)
        job = self._get(record.name)
        record.state, record.updated = _state(job), time.time()
        self.store.update(record)
        if not record.done:
            raise JobPendingError(record.name, record.state)
        if record.state != SUCCEEDED:
            message = job.error.message if job.error is not None else None
            raise JobFailedError(record.name, record.state, message)
        stored = self.store.items(record.name)
        answers, billed = self._answers(job, stored)
        result = BatchResult(job=record, billed_tokens=billed)
        retry_online: list[tuple[StoredItem, ItemFailure]] = []
        for it in stored:
            answer = answers.get(it.pos)
            if answer is None:
                result.failures.append(
                    ItemFailure(
                        it.key, "the job returned no answer for this item", None, it.payload
                    )
                )
                continue
            values, code, message = answer
            if values is not None:
                try:
                    result.vectors.append(self._check(it.key, values))
                except ResponseMismatchError as exc:
                    result.failures.append(ItemFailure(it.key, str(exc), None, it.payload))
                    continue
                result.keys.append(it.key)
                result.payloads.append(it.payload)
                continue
            failure = ItemFailure(it.key, message or "failed", code, it.payload)
            if fallback_online and it.fallback is not None and code in NOT_ACCEPTED_CODES:
                retry_online.append((it, failure))
            else:
                result.failures.append(failure)
        if retry_online:
            self._fallback(retry_online, result)
        self._fill_cache(stored, result)
        record.collected, record.updated = time.time(), time.time()
        record.stored, record.failed = len(result.keys), len(result.failures)
        self.store.update(record)
        if record.input_file:
            self._delete_file(record.input_file)
        return result

    def _answers(
        self, job: types.BatchJob, stored: list[StoredItem]
    ) -> tuple[dict[int, tuple[list[float] | None, int | None, str | None]], int | None]:
        """Position -> (values, error code, error message), from inline answers or the file."""
        dest = job.dest
        out: dict[int, tuple[list[float] | None, int | None, str | None]] = {}
        billed = 0
        seen_tokens = False
        if dest is not None and dest.file_name:
            name = dest.file_name
            client = genai_client(self.embedder.transport)
            data = self._retrying(
                "download the batch results", lambda: client.files.download(file=name)
            )
            by_key = {it.key: it.pos for it in stored}
            for n, line in enumerate(data.splitlines(), start=1):
                if not line.strip():
                    continue
                entry = json.loads(line)
                key = str(entry.get("key", ""))
                if key not in by_key:
                    log.warning("batch result line %d has an unknown key %r", n, key)
                    continue
                values, code, message, tokens = _parse_answer(entry)
                if tokens is not None:
                    billed, seen_tokens = billed + tokens, True
                out[by_key[key]] = (values, code, message)
            return out, billed if seen_tokens else None
        answers: list[Any] = []
        if dest is not None and dest.inlined_embed_content_responses is not None:
            answers = [
                r.model_dump(exclude_none=True) for r in dest.inlined_embed_content_responses
            ]
        elif dest is not None and dest.inlined_responses is not None:  # every item failed
            answers = [r.model_dump(exclude_none=True) for r in dest.inlined_responses]
        if len(answers) != len(stored):
            raise ResponseMismatchError(
                f"batch job {job.name} holds {len(stored)} items but the service returned "
                f"{len(answers)} answers; refusing to guess which answer belongs to which item"
            )
        for it, answer in zip(stored, answers, strict=True):
            values, code, message, tokens = _parse_answer(answer)
            if tokens is not None:
                billed, seen_tokens = billed + tokens, True
            out[it.pos] = (values, code, message)
        return out, billed if seen_tokens else None

    def _check(self, key: str, values: list[float]) -> list[float]:
        """The same checks and normalisation as an online answer."""
        if len(values) != self.embedder.dimensions:
            raise ResponseMismatchError(
                f"item {key}: got a {len(values)}-d vector, asked for {self.embedder.dimensions}"
            )
        try:
            return vec.checked_rows([values], normalize=self.embedder.settings.normalize)[0]
        except vec.BadVectorError as exc:
            raise ResponseMismatchError(f"item {key}: {exc.reason}") from exc
        except ValueError as exc:
            raise ResponseMismatchError(f"item {key}: {exc}") from exc

    def _fallback(self, todo: list[tuple[StoredItem, ItemFailure]], result: BatchResult) -> None:
        """Embed online the media items Batch Mode did not accept, one by one so a bad
        item cannot sink the rest."""
        log.warning(
            "Batch Mode did not accept %d items holding media (%s); embedding them online",
            len(todo),
            todo[0][1].message,
        )
        for it, failure in todo:
            try:
                item = _restore(it.fallback or {}, self.embedder)
                vector = self.embedder.embed([item], task="raw")[0]
            except Gemb2Error as exc:
                result.failures.append(
                    ItemFailure(
                        it.key,
                        f"{failure.message}; the online fallback failed too: {exc}",
                        failure.code,
                        it.payload,
                    )
                )
                continue
            result.keys.append(it.key)
            result.vectors.append(vector)
            result.payloads.append(it.payload)
            result.fallback.append(failure)

    def _fill_cache(self, stored: list[StoredItem], result: BatchResult) -> None:
        cache = self.embedder.cache
        if cache is None:
            return
        by_key = {it.key: it.cache_key for it in stored}
        cache.put_many(
            {
                ck: v
                for k, v in zip(result.keys, result.vectors, strict=True)
                if (ck := by_key.get(k)) is not None
            }
        )

    def _get(self, name: str) -> types.BatchJob:
        client = genai_client(self.embedder.transport)
        job: types.BatchJob = self._retrying(
            f"get batch job {name}", lambda: client.batches.get(name=name)
        )
        return job

    def _delete_file(self, name: str) -> None:
        try:
            genai_client(self.embedder.transport).files.delete(name=name)
        except Exception as exc:  # the service deletes it after 48 h anyway
            log.info("could not delete the uploaded batch input %s: %s", name, exc)

    def _retrying(
        self,
        what: str,
        call: Callable[[], T],
        *,
        before_retry: Callable[[], T | None] | None = None,
    ) -> T:
        """The Embedder's retry policy (retryable codes, backoff, the server's delay)."""
        s = self.embedder.settings
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except Exception as exc:
                err = retry.wrap(exc)
                if err is None:
                    raise
                if not retry.is_retryable(err):
                    raise type(err)(
                        f"cannot {what}: {err.message}",
                        code=err.code,
                        status=err.status,
                        details=err.details,
                    ) from exc
                if attempt > s.max_retries:
                    raise RetryExhaustedError(err, attempt) from exc
                delay = retry.backoff(
                    attempt - 1, s.backoff_initial, s.backoff_max, err.retry_after
                )
                log.info("cannot %s (%s); retrying in %.1fs", what, err, delay)
                time.sleep(delay)
            if before_retry is not None:
                try:
                    found = before_retry()
                except Exception:
                    found = None
                if found is not None:
                    return found

    def __repr__(self) -> str:
        return f"BatchEmbedder({self.embedder!r}, media={self.media!r}, store={self.store!r})"


# --- helpers ---------------------------------------------------------------------------------


def _state(job: types.BatchJob) -> str:
    state = job.state
    if state is None:
        return "JOB_STATE_UNSPECIFIED"
    return str(getattr(state, "value", state))


def _estimate(entries: list[_Entry]) -> CostEstimate:
    tokens: Counter[str] = Counter()
    for e in entries:
        tokens.update(e.prepared.tokens)
    return CostEstimate(dict(tokens), len(entries))


def _line(e: _Entry, dims: int) -> dict[str, Any]:
    """One JSONL line: the caller's key and the request an online call would send."""
    p = e.prepared
    content = item_json(p.item, p.text)
    return {"key": e.key, "request": embed_request(content, p.task_type, p.title, dims)}


def _line_size(e: _Entry) -> int:
    """Bytes one item takes in a request: base64 grows media by a third."""
    return (e.prepared.size * 4) // 3 + len(e.key) + _LINE_OVERHEAD


def _parse_answer(
    answer: Mapping[str, Any],
) -> tuple[list[float] | None, int | None, str | None, int | None]:
    """(values, error code, error message, token count) from one answer, either spelling."""
    error = answer.get("error") or answer.get("status")
    response = answer.get("response") or {}
    embedding = response.get("embedding") if isinstance(response, Mapping) else None
    values = embedding.get("values") if isinstance(embedding, Mapping) else None
    tokens = response.get("token_count", response.get("tokenCount")) if response else None
    if values:
        return [float(x) for x in values], None, None, int(tokens) if tokens else None
    if isinstance(error, Mapping) and (error.get("code") or error.get("message")):
        code = error.get("code")
        return None, int(code) if code is not None else None, str(error.get("message", "")), None
    return None, None, "the answer holds neither an embedding nor an error", None


def _fallback_ref(e: _Entry) -> dict[str, Any]:
    """How to rebuild a media item for an online retry: its file and piece when it came
    from ``load_file`` (cheap to keep), else the content itself."""
    meta = e.item.metadata
    if {"source", "piece", "file_hash"} <= meta.keys() and source_path(meta).is_file():
        return {
            "source": str(meta["source"]),
            **({"source_escaped": True} if meta.get("source_escaped") else {}),
            "piece": meta["piece"],
            "file_hash": meta["file_hash"],
        }
    return {"content": item_json(e.prepared.item, e.prepared.text)}


def _restore(ref: Mapping[str, Any], embedder: Embedder) -> Item:
    if "content" in ref:
        parts: list[str | Media] = []
        for part in ref["content"].get("parts", []):
            if part.get("text") is not None:
                parts.append(str(part["text"]))
            elif part.get("inline_data"):
                blob = part["inline_data"]
                data = base64.urlsafe_b64decode(blob["data"])
                parts.append(Media.from_bytes(data, blob.get("mime_type")))
            elif part.get("file_data"):
                fd = part["file_data"]
                parts.append(Media.from_url(fd["file_uri"], fd.get("mime_type"), fetch=False))
        return Item(parts=tuple(parts))
    source = str(source_path(ref))
    try:
        digest = file_hash(Path(source))
    except OSError as exc:
        raise InputError(f"cannot read it again: {exc.strerror or exc}", source=source) from exc
    if digest != ref["file_hash"]:
        raise InputError("the file changed since the job was submitted", source=source)
    s = embedder.settings
    for item in load_file(
        source, s.resolved_limits, use_video_audio=s.use_video_audio, digest=digest
    ):
        if item.metadata.get("piece") == ref["piece"]:
            return item
    raise InputError(f"piece {ref['piece']} is gone", source=source)
