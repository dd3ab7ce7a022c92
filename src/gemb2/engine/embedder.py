"""The engine: items in, vectors out, in order, one per item.

Checks every item before any call, conditions text for the task, serves repeats
from the cache, sends identical items of one call once (each gets the vector),
batches (<= 100 items and the payload limit), runs batches concurrently under a rate
limit, retries what is worth retrying, and refuses any answer whose vector count or
shape is off: a malformed answer is retried like any fault on the wire, and never
returned, cached or handed to ``on_batch``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from google.genai import types
from tqdm.auto import tqdm

from gemb2.engine import retry, vectors
from gemb2.engine.cache import VectorCache
from gemb2.engine.ratelimit import RateLimiter
from gemb2.engine.settings import EmbedSettings
from gemb2.engine.usage import CallUsage, Usage
from gemb2.errors import ConfigError, InputError, ResponseMismatchError, RetryExhaustedError
from gemb2.inputs.media import Item, ItemLike, as_items
from gemb2.inputs.tokens import utf8_len
from gemb2.model.limits import check_item, check_sent_text
from gemb2.model.tasks import Role, condition
from gemb2.transport import wire
from gemb2.transport.base import Answer, CallResult, EmbedCall, Transport
from gemb2.transport.genai import GenAITransport

log = logging.getLogger("gemb2")

OnBatch = Callable[[list[int], list[list[float]]], None]


@dataclass(frozen=True)
class _Prepared:
    index: int
    item: Item
    text: str | None  # the conditioned text that replaces a text-only item's own
    task_type: str | None
    title: str | None
    tokens: dict[str, int]  # estimated input tokens by modality
    modality: str
    size: int
    key: str

    @property
    def content(self) -> types.Content:
        """The SDK Content, built on demand (Batch Mode's inline jobs send these; online
        calls build their body from ``item`` and ``text`` when they are sent)."""
        return self.item.to_content(self.text)


# a batch answered: its checked vectors, the billed tokens the answer reported, attempts
_Sent = tuple[list[list[float]], int | None, int]

# items checked in a thread pool from this many on (probing PyAV/pypdf/Pillow partly
# runs outside the GIL); fewer are checked inline
_PARALLEL_PREPARE = 8
# (measured on 2 cores: 4 threads check 200 mixed media items about 25% faster than 1)
_PREPARE_WORKERS = 4 if (os.cpu_count() or 1) > 1 else 1


class _ByteBudget:
    """Inline bytes in flight across concurrent calls: a call waits until its bytes fit.
    A call larger than the whole budget goes alone (nothing else in flight), never stuck."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # most bytes ever in flight at once (the tests read it)
        self._cond = threading.Condition()

    def _fits(self, n: int) -> bool:
        return n == 0 or self.used == 0 or self.used + n <= self.limit

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)

    def acquire(self, n: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._fits(n))
            self._take(n)

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class _AsyncByteBudget(_ByteBudget):
    """The same budget for one event loop's tasks."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._acond = asyncio.Condition()

    async def aacquire(self, n: int) -> None:
        async with self._acond:
            await self._acond.wait_for(lambda: self._fits(n))
            self._take(n)

    async def arelease(self, n: int) -> None:
        async with self._acond:
            self.used -= n
            self._acond.notify_all()


class Embedder:
    """Embeds Items with one model, dimension and task; safe to share across threads and tasks.

    >>> Embedder(dimensions=768).embed(["a cat", Path("cat.png")])  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: EmbedSettings | None = None,
        *,
        cache: VectorCache | None = None,
        transport: Transport | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            try:
                settings = EmbedSettings(**overrides)
            except ValueError as exc:  # pydantic's error, re-raised as ours (input hidden)
                raise ConfigError(str(exc)) from None
        elif overrides:
            settings = settings.with_(**overrides)
        self.settings = settings
        # settings are frozen: looked up once, not once per item
        self._spec, self._limits = settings.spec, settings.resolved_limits
        if settings.auto_truncate:  # Vertex AI cuts over-long text itself: no token limit here
            self._limits = self._limits.model_copy(update={"max_tokens": sys.maxsize})
        self.cache = cache
        self.usage = Usage()
        # anything that sends calls (gemb2.testing.FakeTransport in a user's tests)
        self.transport: Transport = transport or GenAITransport(settings)
        self._limiter = RateLimiter(
            settings.requests_per_minute,
            settings.tokens_per_minute,
            burst=settings.max_concurrency,  # each worker's first call need not wait its turn
        )
        self._sem = threading.BoundedSemaphore(settings.max_concurrency)
        self._asems: dict[int, asyncio.Semaphore] = {}
        self._budget = _ByteBudget(settings.max_inflight_bytes)
        self._abudgets: dict[int, _AsyncByteBudget] = {}

    # -- public API -----------------------------------------------------------------

    @property
    def model(self) -> str:
        return self.settings.spec.id

    @property
    def dimensions(self) -> int:
        return self.settings.resolved_dimensions

    def embed(
        self,
        inputs: Iterable[ItemLike],
        *,
        role: Role = "document",
        task: str | None = None,
        progress: bool = False,
        on_batch: OnBatch | None = None,
    ) -> list[list[float]]:
        """One vector per input, in input order. ``on_batch(indices, vectors)`` is
        called as each batch lands, so a caller can store work as it completes.

        A batch whose calls keep failing raises the service's ``APIError`` (not worth
        retrying) or ``RetryExhaustedError``; an answer that cannot be used (not JSON, a
        wrong vector count or dimension, NaN) is retried, and when retries run out its
        ``ResponseMismatchError`` (naming the batch's items) is the ``.last``."""
        prepared = self.prepare(inputs, role=role, task=task)
        results: list[list[float] | None] = [None] * len(prepared)
        batches, on_batch = self._plan(prepared, results, on_batch)
        bar = tqdm(total=len(prepared), disable=not progress, unit="item", desc="embedding")
        bar.update(len(prepared) - sum(len(b) for b in batches))
        try:
            if self._workers(batches) <= 1:
                for batch in batches:
                    self._land(batch, self._call(batch), results, on_batch)
                    self._tick(bar, len(batch))
            else:
                self._run_threaded(batches, results, on_batch, bar)
        finally:
            bar.close()
        return self._complete(results)

    async def aembed(
        self,
        inputs: Iterable[ItemLike],
        *,
        role: Role = "document",
        task: str | None = None,
        progress: bool = False,
        on_batch: OnBatch | None = None,
    ) -> list[list[float]]:
        """Async twin of ``embed`` on the SDK's async client (no thread pool)."""
        prepared = self.prepare(inputs, role=role, task=task)
        results: list[list[float] | None] = [None] * len(prepared)
        batches, on_batch = self._plan(prepared, results, on_batch)
        bar = tqdm(total=len(prepared), disable=not progress, unit="item", desc="embedding")
        bar.update(len(prepared) - sum(len(b) for b in batches))

        async def run(batch: list[_Prepared]) -> None:
            self._land(batch, await self._acall(batch), results, on_batch)
            self._tick(bar, len(batch))

        tasks = [asyncio.ensure_future(run(b)) for b in batches]
        try:
            if tasks:
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in pending:
                    t.cancel()
                for t in done:
                    if t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
        finally:
            bar.close()
        return self._complete(results)

    def embed_query(self, value: ItemLike) -> list[float]:
        return self.embed([value], role="query")[0]

    def embed_documents(self, values: Iterable[ItemLike], **kwargs: Any) -> list[list[float]]:
        return self.embed(values, role="document", **kwargs)

    async def aembed_query(self, value: ItemLike) -> list[float]:
        return (await self.aembed([value], role="query"))[0]

    async def aembed_documents(
        self, values: Iterable[ItemLike], **kwargs: Any
    ) -> list[list[float]]:
        return await self.aembed(values, role="document", **kwargs)

    def prepare(
        self, inputs: Iterable[ItemLike], *, role: Role = "document", task: str | None = None
    ) -> list[_Prepared]:
        """Coerce, check limits and condition every item, before any network call.

        Many items are read and checked in a small thread pool; the error raised is the
        one the inputs in order would raise first (any that cannot be coerced, then the
        first that fails its checks), as when they are checked one by one."""
        values = inputs if isinstance(inputs, list) else list(inputs)
        task_name = task or self.settings.task
        reading = [_needs_reading(v) for v in values]
        # deferred pieces are read to be checked: one at a time keeps one piece in memory
        if _PREPARE_WORKERS < 2 or None in reading or reading.count(True) < _PARALLEL_PREPARE:
            items = as_items(values)
            return [self._prepare_one(i, item, role, task_name) for i, item in enumerate(items)]

        def one(i: int) -> tuple[Item | None, BaseException | None, _Prepared | None]:
            try:
                item = Item.of(values[i])
            except InputError as exc:
                err = exc.at(i)
                err.__cause__ = exc  # as as_items raises it
                return None, err, None
            try:
                return item, None, self._prepare_one(i, item, role, task_name)
            except Exception as exc:
                return item, exc, None

        with ThreadPoolExecutor(_PREPARE_WORKERS, thread_name_prefix="gemb2-prepare") as pool:
            done = list(pool.map(one, range(len(values))))
        for item, exc, _ in done:
            if item is None and exc is not None:  # coercion fails first, as in as_items
                raise exc
        for _, exc, _ in done:
            if exc is not None:
                raise exc
        return [p for _, _, p in done if p is not None]

    def _prepare_one(self, i: int, item: Item, role: Role, task_name: str) -> _Prepared:
        s, spec, limits = self.settings, self._spec, self._limits
        tokens = check_item(item, i, spec, limits, use_video_audio=s.use_video_audio)
        cond = condition(item, spec, task_name, role)
        if cond.text is not None:  # the prefix counts too: check what is sent
            check_sent_text(cond.text, item, i, tokens.get("text", 0), spec, limits)
        # the content address only serves the cache: no hashing on the hot path without one
        key = ""
        if self.cache is not None:
            key = self._key(item, cond.text, cond.task_type, cond.title)
        size = sum(m.size for m in item.media) + utf8_len(cond.text or item.text)
        return _Prepared(
            i, item, cond.text, cond.task_type, cond.title, tokens, item.modality, size, key
        )

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        where = "vertexai" if s.vertexai else (s.base_url or "gemini-api")
        return (
            f"Embedder(model={s.model!r}, dimensions={self.dimensions}, "
            f"task={s.task!r}, at={where!r})"
        )

    # -- internals --------------------------------------------------------------------

    def _key(self, item: Item, text: str | None, task_type: str | None, title: str | None) -> str:
        s = self.settings
        h = hashlib.sha256(
            f"{s.spec.id}|{self.dimensions}|{s.normalize}|{task_type}|{title}|".encode()
        )
        h.update((text or "").encode("utf-8", "surrogatepass"))
        h.update(item.fingerprint().encode())
        return h.hexdigest()

    def _plan(
        self,
        prepared: list[_Prepared],
        results: list[list[float] | None],
        on_batch: OnBatch | None,
    ) -> tuple[list[list[_Prepared]], OnBatch | None]:
        """Serve cache hits, send each distinct request once (identical items in one
        call, e.g. copies of a file or the blank pieces of a PDF, share one vector), and
        batch the rest. The ``on_batch`` returned also lands every copy of what it gets."""
        batches = self._serve_from_cache(prepared, results, on_batch)
        sent, copies = _distinct([p for b in batches for p in b])
        if not copies:
            return batches, on_batch

        def land(indices: list[int], vectors: list[list[float]]) -> None:
            more, values = [], []
            for i, v in zip(indices, vectors, strict=True):
                for j in copies.get(i, ()):
                    results[j] = v
                    more.append(j)
                    values.append(v)
            self.usage.record_deduplicated(len(more))
            if on_batch:
                on_batch(list(indices) + more, list(vectors) + values)

        return self._batches(sent), land

    def _serve_from_cache(
        self,
        prepared: list[_Prepared],
        results: list[list[float] | None],
        on_batch: OnBatch | None,
    ) -> list[list[_Prepared]]:
        todo = prepared
        if self.cache is not None and prepared:
            hits = self.cache.get_many(p.key for p in prepared)
            if hits:
                done = [p for p in prepared if p.key in hits]
                for p in done:
                    results[p.index] = hits[p.key]
                self.usage.record_cached(len(done))
                if on_batch:
                    on_batch([p.index for p in done], [hits[p.key] for p in done])
                todo = [p for p in prepared if p.key not in hits]
        return self._batches(todo)

    def _batches(self, prepared: list[_Prepared]) -> list[list[_Prepared]]:
        """Group by request options, then cut at the item count and payload size."""
        s = self.settings
        limit = min(s.batch_size, s.resolved_limits.max_batch, self.transport.max_batch)
        max_bytes = min(s.resolved_limits.max_inline_bytes, s.max_call_bytes)
        groups: dict[tuple[str | None, str | None], list[_Prepared]] = {}
        for p in prepared:
            groups.setdefault((p.task_type, p.title), []).append(p)
        batches: list[list[_Prepared]] = []
        for group in groups.values():
            current: list[_Prepared] = []
            size = 0
            for p in group:
                if current and (len(current) >= limit or size + p.size > max_bytes):
                    batches.append(current)
                    current, size = [], 0
                current.append(p)
                size += p.size
            if current:
                batches.append(current)
        return batches

    def _workers(self, batches: list[list[_Prepared]]) -> int:
        """Threads worth starting: no more calls than the byte budget lets run at once
        (each thread's own allocator arena keeps the memory its calls touched)."""
        room, fit = self.settings.max_inflight_bytes, 0
        for size in sorted(_inline_bytes(b) for b in batches):
            if fit and size > room:
                break
            room -= size
            fit += 1
        return min(self.settings.max_concurrency, fit)

    def _run_threaded(
        self,
        batches: list[list[_Prepared]],
        results: list[list[float] | None],
        on_batch: OnBatch | None,
        bar: Any,
    ) -> None:
        workers = self._workers(batches)
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gemb2") as pool:
            futures: dict[Future[_Sent], list[_Prepared]] = {
                pool.submit(self._call, b): b for b in batches
            }
            pending = set(futures)
            while pending:
                # land each batch as it arrives: its checks overlap the other calls' waits,
                # and on_batch stores it at once
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut.cancelled():
                        continue
                    # the answer is dropped once landed (freed as the calls go, not at the end)
                    batch = futures.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        # land finished work even after a failure: nothing paid for is lost
                        try:
                            self._land(batch, fut.result(), results, on_batch)
                            self._tick(bar, len(batch))
                            continue
                        except Exception as landing:  # on_batch (or the cache) failed
                            exc = landing
                    if failure is None:  # no new calls after the first failure
                        failure = exc
                        for other in pending:
                            other.cancel()
        if failure is not None:
            raise failure

    def _tick(self, bar: Any, n: int) -> None:
        """Advance the progress bar and show the running cost by modality."""
        bar.update(n)
        if not bar.disable:
            bar.set_postfix_str(self.usage.cost_line(), refresh=False)

    def _land(
        self,
        batch: list[_Prepared],
        sent: _Sent,
        results: list[list[float] | None],
        on_batch: OnBatch | None,
    ) -> None:
        out, billed, attempts = sent
        self._record(batch, billed, attempts)
        for p, v in zip(batch, out, strict=True):
            results[p.index] = v
        if self.cache is not None:
            self.cache.put_many({p.key: v for p, v in zip(batch, out, strict=True)})
        if on_batch:
            on_batch([p.index for p in batch], out)

    def _decode(
        self, batch: list[_Prepared], answer: Answer
    ) -> tuple[list[list[float]], int | None]:
        """The batch's vectors, checked and normalised; ``ResponseMismatchError`` if the
        answer cannot be used. Runs in the calling thread, inside its retry loop (about
        5 ms of CPU per 100 vectors of 768, after the call has freed its slot)."""
        try:
            result = answer.decode()
        except wire.MalformedAnswer as exc:
            raise _mismatch(batch, str(exc)) from None
        return self._validate(batch, result), result.billed_tokens

    def _validate(self, batch: list[_Prepared], result: CallResult) -> list[list[float]]:
        if len(result.vectors) != len(batch):
            raise _mismatch(
                batch,
                f"sent {len(batch)} items but the service returned {len(result.vectors)} "
                "vectors; refusing to guess which vector belongs to which item",
            )
        for p, v in zip(batch, result.vectors, strict=True):
            if len(v) != self.dimensions:
                raise _mismatch(
                    batch, f"item {p.index}: got a {len(v)}-d vector, asked for {self.dimensions}"
                )
        try:
            # one array per batch: per-value Python checks cost more CPU than the engine
            return vectors.checked_rows(result.vectors, normalize=self.settings.normalize)
        except vectors.BadVectorError as exc:
            raise _mismatch(batch, f"item {batch[exc.row].index}: {exc.reason}") from None
        except ValueError as exc:
            raise _mismatch(batch, str(exc)) from None

    def _complete(self, results: list[list[float] | None]) -> list[list[float]]:
        missing = [i for i, v in enumerate(results) if v is None]
        if missing:  # cannot happen unless a batch was lost: never return misaligned output
            raise ResponseMismatchError(f"no vector for items {missing[:10]}")
        return results  # type: ignore[return-value]

    def _record(self, batch: list[_Prepared], billed: int | None, attempts: int) -> None:
        tokens: Counter[str] = Counter()
        for p in batch:
            tokens.update(p.tokens)
        self.usage.record(
            CallUsage(
                items=len(batch),
                modalities=dict(Counter(p.modality for p in batch)),
                tokens=dict(tokens),
                billed_tokens=billed,
                attempts=attempts,
            )
        )

    def _next_wait(self, exc: BaseException, attempt: int) -> float:
        """Seconds to wait before the next attempt, or raise the package's error."""
        err = retry.wrap(exc)
        if err is None:
            raise exc
        s = self.settings
        if not retry.is_retryable(err):
            if err is exc:
                raise err
            raise err from exc
        if attempt > s.max_retries:
            raise RetryExhaustedError(err, attempt) from exc
        delay = retry.backoff(attempt - 1, s.backoff_initial, s.backoff_max, err.retry_after)
        log.info("attempt %d failed (%s); retrying in %.1fs", attempt, err, delay)
        return delay

    def _count(self, attempt: int, exc: BaseException | None = None) -> None:
        """Count an attempt, whatever came of it; not one that failed before anything was
        sent (a missing key, a bug: not a failure of the service)."""
        if isinstance(exc, Exception) and retry.wrap(exc) is None:
            return
        self.usage.record_attempt(retry=attempt > 1)

    def _embed_call(self, batch: list[_Prepared]) -> EmbedCall:
        return EmbedCall(
            self.model,
            self.dimensions,
            [(p.item, p.text) for p in batch],
            batch[0].task_type,
            batch[0].title,
        )

    def _send(self, batch: list[_Prepared], attempt: int) -> Answer:
        try:
            answer = self.transport.post(self._embed_call(batch))
        except BaseException as exc:
            self._count(attempt, exc)
            raise
        self._count(attempt)
        return answer

    async def _asend(self, batch: list[_Prepared], attempt: int) -> Answer:
        try:
            answer = await self.transport.apost(self._embed_call(batch))
        except BaseException as exc:  # a cancelled call was sent all the same
            self._count(attempt, exc)
            raise
        self._count(attempt)
        return answer

    def _call(self, batch: list[_Prepared]) -> _Sent:
        """Send one batch and check its answer, retrying as settings say: a malformed
        answer is a fault on the wire like a 503."""
        tokens = sum(p.tokens.get("text", 0) for p in batch)
        nbytes = _inline_bytes(batch)
        attempt = 0
        while True:
            attempt += 1
            self._limiter.wait(tokens)
            # the contents (and any deferred media's bytes) exist only while the call
            # holds its share of the in-flight byte budget
            self._budget.acquire(nbytes)
            try:
                with self._sem:
                    answer = self._send(batch, attempt)
            except Exception as exc:
                self._budget.release(nbytes)
                time.sleep(self._next_wait(exc, attempt))
                continue
            self._budget.release(nbytes)
            try:
                return (*self._decode(batch, answer), attempt)
            except ResponseMismatchError as exc:
                time.sleep(self._next_wait(exc, attempt))

    async def _acall(self, batch: list[_Prepared]) -> _Sent:
        tokens = sum(p.tokens.get("text", 0) for p in batch)
        nbytes = _inline_bytes(batch)
        sem = self._async_semaphore()
        budget = self._async_budget()
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.await_(tokens)
            await budget.aacquire(nbytes)
            try:
                async with sem:
                    answer = await self._asend(batch, attempt)
            except Exception as exc:
                await budget.arelease(nbytes)
                await asyncio.sleep(self._next_wait(exc, attempt))
                continue
            await budget.arelease(nbytes)
            try:
                return (*self._decode(batch, answer), attempt)
            except ResponseMismatchError as exc:
                await asyncio.sleep(self._next_wait(exc, attempt))

    def _async_budget(self) -> _AsyncByteBudget:
        loop_id = id(asyncio.get_running_loop())
        budget = self._abudgets.get(loop_id)
        if budget is None:
            budget = self._abudgets[loop_id] = _AsyncByteBudget(self.settings.max_inflight_bytes)
        return budget

    def _async_semaphore(self) -> asyncio.Semaphore:
        loop_id = id(asyncio.get_running_loop())
        sem = self._asems.get(loop_id)
        if sem is None:
            sem = self._asems[loop_id] = asyncio.Semaphore(self.settings.max_concurrency)
        return sem


def _distinct(todo: list[_Prepared]) -> tuple[list[_Prepared], dict[int, list[int]]]:
    """The first of each group of identical requests (same options and content sent),
    and the input indices of the others by their first's index. Grouped by what is
    cheap to compare (the text sent, or each part's text or type, size and URI); only
    media items equal on all of that are told apart by content digest (a read)."""
    groups: dict[tuple[Any, ...], list[_Prepared]] = {}
    for p in todo:
        if p.text is not None:  # a conditioned text is sent alone, as it is
            sent_as: Any = p.text
        else:
            sent_as = tuple(
                x if isinstance(x, str) else (x.mime_type, x.size, x.uri) for x in p.item.parts
            )
        groups.setdefault((p.task_type, p.title, sent_as), []).append(p)
    sent: list[_Prepared] = []
    copies: dict[int, list[int]] = {}
    for group in groups.values():
        if len(group) > 1 and group[0].item.media:
            by_content: dict[tuple[str, ...], list[_Prepared]] = {}
            for p in group:
                by_content.setdefault(tuple(m.digest for m in p.item.media), []).append(p)
            split = list(by_content.values())
        else:
            split = [group]
        for same in split:
            sent.append(same[0])
            if len(same) > 1:
                copies[same[0].index] = [p.index for p in same[1:]]
    sent.sort(key=lambda p: p.index)
    return sent, copies


def _needs_reading(value: object) -> bool | None:
    """Inputs whose checks read or decode media (texts are checked faster inline);
    None for an item with deferred media (read from disk to be checked)."""
    if isinstance(value, str):
        return False
    if isinstance(value, Item):
        if any(m.loader is not None and m.data is None for m in value.media):
            return None
        return not value.is_text_only
    return True


def _mismatch(batch: list[_Prepared], reason: str) -> ResponseMismatchError:
    """The error of an unusable answer, naming the batch by its input positions."""
    idx = [p.index for p in batch]
    lo, hi = min(idx), max(idx)
    if len(idx) == 1:
        where = f"item {lo}"
    elif hi - lo + 1 == len(idx):
        where = f"items {lo}..{hi}"
    else:
        where = f"{len(idx)} items between {lo} and {hi}"
    return ResponseMismatchError(f"bad answer for {where}: {reason}", items=idx)


def _inline_bytes(batch: list[_Prepared]) -> int:
    """Media bytes a call sends inline (text is small: it never waits for the budget)."""
    return sum(m.size for p in batch for m in p.item.media)


def embed(inputs: Sequence[ItemLike], **settings: Any) -> list[list[float]]:
    """One-shot convenience: ``gemb2.embed(["text", Path("a.png")], dimensions=768)``."""
    with Embedder(**settings) as embedder:
        return embedder.embed(inputs)
