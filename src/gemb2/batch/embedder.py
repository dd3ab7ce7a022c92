"""``BatchEmbedder``: submit items to Batch Mode with an ``Embedder``'s settings, collect later.

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

import json
import logging
import secrets
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from google.genai import types

from gemb2.batch.entries import (
    _Entry,
    _estimate,
    _fallback_ref,
    _line,
    _line_size,
    _parse_answer,
    _restore,
    _state,
)
from gemb2.batch.records import (
    FILE_MAX_BYTES,
    INLINE_MAX_BYTES,
    NOT_ACCEPTED_CODES,
    SUCCEEDED,
    BatchResult,
    ItemFailure,
    JobFailedError,
    JobPendingError,
    JobRecord,
    Submission,
)
from gemb2.batch.store import JobStore, StoredItem
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
from gemb2.inputs.media import Item, ItemLike, as_items
from gemb2.model.tasks import Role
from gemb2.transport.genai import genai_client

log = logging.getLogger("gemb2")

T = TypeVar("T")
MediaPolicy = Literal["online", "batch"]
SubmitMode = Literal["auto", "inline", "file"]
OnOnline = Callable[[list[str], list[list[float]]], None]


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
