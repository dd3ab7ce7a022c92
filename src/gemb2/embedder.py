"""The engine: items in, vectors out, in order, one per item.

Checks every item before any call, conditions text for the task, serves repeats
from the cache, batches (<= 100 items and the payload limit), runs batches
concurrently under a rate limit, retries what is worth retrying, and refuses any
answer whose vector count or shape is off.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from google.genai import types
from tqdm.auto import tqdm

from . import retry, vectors
from .cache import VectorCache
from .errors import (
    ConfigError,
    LimitExceededError,
    ResponseMismatchError,
    RetryExhaustedError,
)
from .limits import check_item
from .media import Item, ItemLike, as_items
from .ratelimit import RateLimiter
from .settings import EmbedSettings
from .tasks import Role, condition
from .tokens import estimate_tokens
from .transport import CallResult, Transport
from .usage import CallUsage, Usage

log = logging.getLogger("gemb2")

OnBatch = Callable[[list[int], list[list[float]]], None]


@dataclass(frozen=True)
class _Prepared:
    index: int
    content: types.Content
    task_type: str | None
    title: str | None
    tokens: Counter[str]
    modality: str
    size: int
    key: str


class Embedder:
    """Embeds Items with one model, dimension and task; safe to share across threads and tasks.

    >>> Embedder(dimensions=768).embed(["a cat", Path("cat.png")])  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: EmbedSettings | None = None,
        *,
        cache: VectorCache | None = None,
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
        self.cache = cache
        self.usage = Usage()
        self.transport = Transport(settings)
        self._limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
        self._sem = threading.BoundedSemaphore(settings.max_concurrency)
        self._asems: dict[int, asyncio.Semaphore] = {}

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
        called as each batch lands, so a caller can store work as it completes."""
        prepared = self.prepare(inputs, role=role, task=task)
        results: list[list[float] | None] = [None] * len(prepared)
        batches = self._serve_from_cache(prepared, results, on_batch)
        bar = tqdm(total=len(prepared), disable=not progress, unit="item", desc="embedding")
        bar.update(len(prepared) - sum(len(b) for b in batches))
        try:
            if len(batches) <= 1 or self.settings.max_concurrency == 1:
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
        batches = self._serve_from_cache(prepared, results, on_batch)
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
        """Coerce, check limits and condition every item, before any network call."""
        items = as_items(inputs)
        s = self.settings
        spec, limits, task_name = s.spec, s.resolved_limits, task or s.task
        prepared = []
        for i, item in enumerate(items):
            tokens = check_item(item, i, spec, limits, use_video_audio=s.use_video_audio)
            cond = condition(item, spec, task_name, role)
            if cond.text is not None:  # the prefix counts too: check what is sent
                sent = estimate_tokens(cond.text)
                if sent > limits.max_tokens:
                    raise LimitExceededError(
                        f"text is about {sent} tokens with its task prefix",
                        item=i,
                        source=item.name,
                        limit=f"{limits.max_tokens} tokens per item for {spec.id}; "
                        "split it with gemb2.segment",
                    )
            content = item.to_content(cond.text)
            # the content address only serves the cache: no hashing on the hot path without one
            key = ""
            if self.cache is not None:
                key = self._key(item, cond.text, cond.task_type, cond.title)
            size = sum(m.size for m in item.media) + len((cond.text or item.text).encode())
            prepared.append(
                _Prepared(i, content, cond.task_type, cond.title, tokens, item.modality, size, key)
            )
        return prepared

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
        limit, max_bytes = self.transport.max_batch, self.settings.resolved_limits.max_inline_bytes
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

    def _run_threaded(
        self,
        batches: list[list[_Prepared]],
        results: list[list[float] | None],
        on_batch: OnBatch | None,
        bar: Any,
    ) -> None:
        workers = min(self.settings.max_concurrency, len(batches))
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gemb2") as pool:
            futures: dict[Future[CallResult], list[_Prepared]] = {
                pool.submit(self._call, b): b for b in batches
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    if fut.cancelled():
                        continue
                    exc = fut.exception()
                    if exc is not None:
                        if failure is None:
                            failure = exc
                            for other in pending:
                                other.cancel()
                        continue
                    # land finished work even after a failure: nothing paid for is lost
                    self._land(futures[fut], fut.result(), results, on_batch)
                    self._tick(bar, len(futures[fut]))
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
        result: CallResult,
        results: list[list[float] | None],
        on_batch: OnBatch | None,
    ) -> None:
        out = self._validate(batch, result)
        for p, v in zip(batch, out, strict=True):
            results[p.index] = v
        if self.cache is not None:
            self.cache.put_many({p.key: v for p, v in zip(batch, out, strict=True)})
        if on_batch:
            on_batch([p.index for p in batch], out)

    def _validate(self, batch: list[_Prepared], result: CallResult) -> list[list[float]]:
        if len(result.vectors) != len(batch):
            raise ResponseMismatchError(
                f"sent {len(batch)} items but the service returned {len(result.vectors)} "
                "vectors; refusing to guess which vector belongs to which item"
            )
        for p, v in zip(batch, result.vectors, strict=True):
            if len(v) != self.dimensions:
                raise ResponseMismatchError(
                    f"item {p.index}: got a {len(v)}-d vector, asked for {self.dimensions}"
                )
        try:
            # one array per batch: per-value Python checks cost more CPU than the engine
            return vectors.checked_rows(result.vectors, normalize=self.settings.normalize)
        except ValueError as exc:
            row = int(str(exc).split(":")[0].removeprefix("row "))
            reason = str(exc).split(": ", 1)[1]
            raise ResponseMismatchError(f"item {batch[row].index}: {reason}") from exc

    def _complete(self, results: list[list[float] | None]) -> list[list[float]]:
        missing = [i for i, v in enumerate(results) if v is None]
        if missing:  # cannot happen unless a batch was lost: never return misaligned output
            raise ResponseMismatchError(f"no vector for items {missing[:10]}")
        return results  # type: ignore[return-value]

    def _record(self, batch: list[_Prepared], result: CallResult, attempts: int) -> None:
        tokens: Counter[str] = Counter()
        for p in batch:
            tokens.update(p.tokens)
        self.usage.record(
            CallUsage(
                items=len(batch),
                modalities=dict(Counter(p.modality for p in batch)),
                tokens=dict(tokens),
                billed_tokens=result.billed_tokens,
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
            raise err from exc
        if attempt > s.max_retries:
            raise RetryExhaustedError(err, attempt) from exc
        delay = retry.backoff(attempt - 1, s.backoff_initial, s.backoff_max, err.retry_after)
        log.info("attempt %d failed (%s); retrying in %.1fs", attempt, err, delay)
        return delay

    def _call(self, batch: list[_Prepared]) -> CallResult:
        contents = [p.content for p in batch]
        tokens = sum(p.tokens.get("text", 0) for p in batch)
        attempt = 0
        while True:
            attempt += 1
            self._limiter.wait(tokens)
            try:
                with self._sem:
                    result = self.transport.embed(contents, batch[0].task_type, batch[0].title)
            except Exception as exc:
                time.sleep(self._next_wait(exc, attempt))
                continue
            self._record(batch, result, attempt)
            return result

    async def _acall(self, batch: list[_Prepared]) -> CallResult:
        contents = [p.content for p in batch]
        tokens = sum(p.tokens.get("text", 0) for p in batch)
        sem = self._async_semaphore()
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.await_(tokens)
            try:
                async with sem:
                    result = await self.transport.aembed(
                        contents, batch[0].task_type, batch[0].title
                    )
            except Exception as exc:
                await asyncio.sleep(self._next_wait(exc, attempt))
                continue
            self._record(batch, result, attempt)
            return result

    def _async_semaphore(self) -> asyncio.Semaphore:
        loop_id = id(asyncio.get_running_loop())
        sem = self._asems.get(loop_id)
        if sem is None:
            sem = self._asems[loop_id] = asyncio.Semaphore(self.settings.max_concurrency)
        return sem


def embed(inputs: Sequence[ItemLike], **settings: Any) -> list[list[float]]:
    """One-shot convenience: ``gemb2.embed(["text", Path("a.png")], dimensions=768)``."""
    with Embedder(**settings) as embedder:
        return embedder.embed(inputs)
