"""The engine: items in, vectors out, in order, one per item.

Checks every item before any call (a run of many media files: cheap checks of all
first, full checks just ahead of each call, ``engine/streaming.py``), conditions text
for the task, serves repeats from the cache, sends identical items of a run once
(each gets the vector),
batches (<= 100 items and the payload limit), runs batches concurrently under a rate
limit, retries what is worth retrying, and refuses any answer whose vector count or
shape is off: a malformed answer is retried like any fault on the wire, and never
returned, cached or handed to ``on_batch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from gemb2.engine import calls, streaming
from gemb2.engine.budget import AsyncByteBudget, ByteBudget
from gemb2.engine.cache import VectorCache
from gemb2.engine.concurrency import Gate
from gemb2.engine.limiter_backends import limiter_for
from gemb2.engine.planning import (
    Answered,
    EmbedRun,
    OnBatch,
    PreparedItem,
    threads_worth_starting,
)
from gemb2.engine.settings import EmbedSettings
from gemb2.engine.streaming import Span
from gemb2.engine.usage import Usage
from gemb2.errors import ConfigError, InputError
from gemb2.inputs.media import Item, ItemLike, as_items
from gemb2.inputs.tokens import utf8_len
from gemb2.model.limits import check_item, check_sent_text
from gemb2.model.tasks import Role, condition
from gemb2.transport.base import Answer, CallResult, Transport
from gemb2.transport.genai import GenAITransport

__all__ = ["Embedder", "OnBatch", "PreparedItem", "embed"]


# items checked in a thread pool from this many on (probing PyAV/pypdf/Pillow partly
# runs outside the GIL); fewer are checked inline
_PARALLEL_PREPARE = 8
# (measured on 2 cores: 4 threads check 200 mixed media items about 25% faster than 1)
_PREPARE_WORKERS = 4 if (os.cpu_count() or 1) > 1 else 1


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
        self._limiter = limiter_for(settings)  # in-process, or shared (settings.limiter)
        # the calls in flight: an adaptive window up to max_concurrency (threads and tasks)
        self.gate = Gate(settings.max_concurrency, adaptive=settings.adaptive_concurrency)
        self._budget = ByteBudget(settings.max_inflight_bytes)
        self._abudgets: dict[int, AsyncByteBudget] = {}
        # the last streamed run's read-ahead (its ``peak``: most media bytes read, not landed)
        self.read_ahead: streaming.ReadAhead | None = None

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
        ``ResponseMismatchError`` (naming the batch's items) is the ``.last``. After the
        first failure no call is sent; calls already sent finish and land.

        Many media files are read and checked just ahead of their calls, not all before
        the first (``gemb2.engine.streaming``)."""
        values = inputs if isinstance(inputs, list) else list(inputs)
        stop = threading.Event()
        plan = self._stream_plan(values, role, task)
        if plan is not None:
            run, prepare, ahead = self._streamed(values, role, task, progress, on_batch, stop)
            with run:
                threads = self.settings.max_concurrency
                streaming.drive_threaded(run, plan, prepare, self._call, stop, threads, ahead)
            return run.vectors()
        with self._run(values, role, task, progress, on_batch, stop) as run:
            if self._threads(run.batches) <= 1:
                for batch in run.batches:
                    run.land(batch, self._call(batch, stop))
            else:
                self._run_threaded(run, stop)
        return run.vectors()

    async def aembed(
        self,
        inputs: Iterable[ItemLike],
        *,
        role: Role = "document",
        task: str | None = None,
        progress: bool = False,
        on_batch: OnBatch | None = None,
    ) -> list[list[float]]:
        """Async twin of ``embed`` on the SDK's async client (no thread pool): the same
        planning, retries, landing and failure, one task per batch."""
        values = inputs if isinstance(inputs, list) else list(inputs)
        stop = asyncio.Event()
        plan = self._stream_plan(values, role, task)
        if plan is not None:
            run, prepare, ahead = self._streamed(values, role, task, progress, on_batch, stop)
            with run:
                await streaming.drive_async(run, plan, prepare, self._acall, stop, ahead)
            return run.vectors()
        with self._run(values, role, task, progress, on_batch, stop) as run:

            async def send(batch: list[PreparedItem]) -> None:
                try:
                    run.land(batch, await self._acall(batch, stop))
                except Exception as exc:
                    run.fail(exc)

            tasks = [asyncio.ensure_future(send(b)) for b in run.batches]
            try:
                if tasks:
                    await asyncio.wait(tasks)
            finally:  # cancelled from outside: cancel the calls too
                for t in tasks:
                    t.cancel()
        return run.vectors()

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
    ) -> list[PreparedItem]:
        """Coerce, check limits and condition every item, before any network call.

        Many items are read and checked in a small thread pool; the error raised is the
        one the inputs in order would raise first (any that cannot be coerced, then the
        first that fails its checks), as when they are checked one by one."""
        values = inputs if isinstance(inputs, list) else list(inputs)
        return self._prepare_span(values, 0, len(values), role, task or self.settings.task)

    def _prepare_span(
        self, values: list[ItemLike], start: int, stop: int, role: Role, task_name: str
    ) -> list[PreparedItem]:
        """``prepare`` of inputs ``start``..``stop``, addressed by their place in ``values``."""
        reading = [_needs_reading(values[i]) for i in range(start, stop)]
        # deferred pieces are read to be checked: one at a time keeps one piece in memory
        if _PREPARE_WORKERS < 2 or None in reading or reading.count(True) < _PARALLEL_PREPARE:
            if start == 0 and stop == len(values):
                items = as_items(values)
            else:
                try:
                    items = as_items(values[start:stop])
                except InputError as bad:
                    raise bad.at(start + (bad.item or 0)) from bad
            return [self._prepare_one(start + k, it, role, task_name) for k, it in enumerate(items)]

        def one(i: int) -> tuple[Item | None, BaseException | None, PreparedItem | None]:
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
            done = list(pool.map(one, range(start, stop)))
        for item, exc, _ in done:
            if item is None and exc is not None:  # coercion fails first, as in as_items
                raise exc
        for _, exc, _ in done:
            if exc is not None:
                raise exc
        return [p for _, _, p in done if p is not None]

    def _prepare_one(self, i: int, item: Item, role: Role, task_name: str) -> PreparedItem:
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
        return PreparedItem(
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

    def _run(
        self,
        inputs: list[ItemLike],
        role: Role,
        task: str | None,
        progress: bool,
        on_batch: OnBatch | None,
        stop: threading.Event | asyncio.Event,
    ) -> EmbedRun:
        """Check every input, serve cache hits, and plan the calls of one run."""
        return self._new_run(self.prepare(inputs, role=role, task=task), progress, on_batch, stop)

    def _new_run(
        self,
        prepared: list[PreparedItem],
        progress: bool,
        on_batch: OnBatch | None,
        stop: threading.Event | asyncio.Event,
        total: int | None = None,
    ) -> EmbedRun:
        max_items, max_bytes = self._call_limits()
        return EmbedRun(
            prepared,
            cache=self.cache,
            usage=self.usage,
            on_batch=on_batch,
            max_items=max_items,
            max_bytes=max_bytes,
            progress=progress,
            stop=stop,
            total=total,
        )

    def _call_limits(self) -> tuple[int, int]:
        """Most items, and most inline bytes, of one call."""
        s = self.settings
        max_items = min(s.batch_size, s.resolved_limits.max_batch, self.transport.max_batch)
        return max_items, min(s.resolved_limits.max_inline_bytes, s.max_call_bytes)

    def _stream_plan(
        self, values: list[ItemLike], role: Role, task: str | None
    ) -> list[Span] | None:
        """The spans of a run worth streaming (media to read, more than one call's worth),
        after the cheap check of every input; None: prepare everything first."""
        if len(values) <= _PARALLEL_PREPARE or not any(_needs_reading(v) for v in values):
            return None
        task_name = task or self.settings.task
        sizes = []
        for i, value in enumerate(values):
            size, doubted = streaming.size_of(value, self._limits.max_inline_bytes)
            if doubted:  # its full check, now: raises the error it would raise unstreamed
                self._prepare_span(values, i, i + 1, role, task_name)
            sizes.append(size)
        plan = streaming.spans(sizes, *self._call_limits())
        return plan if len(plan) > 1 else None

    def _streamed(
        self,
        values: list[ItemLike],
        role: Role,
        task: str | None,
        progress: bool,
        on_batch: OnBatch | None,
        stop: threading.Event | asyncio.Event,
    ) -> tuple[EmbedRun, streaming.Prepare, streaming.ReadAhead]:
        """A streamed run's parts: the run, how a span is prepared, the read-ahead bound
        (bytes read and not landed: the in-flight budget again as much, for what waits)."""
        task_name = task or self.settings.task

        def prepare(span: Span) -> list[PreparedItem]:
            return self._prepare_span(values, span.start, span.stop, role, task_name)

        run = self._new_run([], progress, on_batch, stop, total=len(values))
        self.read_ahead = streaming.ReadAhead(2 * self.settings.max_inflight_bytes)
        return run, prepare, self.read_ahead

    def _threads(self, batches: list[list[PreparedItem]]) -> int:
        s = self.settings
        return threads_worth_starting(batches, s.max_inflight_bytes, s.max_concurrency)

    def _run_threaded(self, run: EmbedRun, stop: threading.Event) -> None:
        with ThreadPoolExecutor(self._threads(run.batches), thread_name_prefix="gemb2") as pool:
            futures: dict[Future[Answered], list[PreparedItem]] = {
                pool.submit(self._call, b, stop): b for b in run.batches
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
                    if run.settle(futures.pop(fut), fut):  # the calls not started yet
                        for other in pending:
                            other.cancel()

    def _validate(self, batch: list[PreparedItem], result: CallResult) -> list[list[float]]:
        return calls.validate(batch, result, self.dimensions, normalize=self.settings.normalize)

    def _attempts(
        self, batch: list[PreparedItem], stop: threading.Event | asyncio.Event
    ) -> calls.Steps:
        return calls.attempts(
            batch,
            settings=self.settings,
            dimensions=self.dimensions,
            limiter=self._limiter,
            usage=self.usage,
            stopped=stop.is_set,
        )

    def _call(self, batch: list[PreparedItem], stop: threading.Event) -> Answered:
        """Carry out one batch call's steps in this thread (``calls.attempts`` decides
        them). A pause ends early when the run fails."""
        steps = self._attempts(batch, stop)
        answer: Answer | None = None
        failure: BaseException | None = None
        while True:
            try:
                step = steps.send(answer) if failure is None else steps.throw(failure)
            except StopIteration as done:
                return done.value
            answer, failure = None, None
            if isinstance(step, calls.Pause):
                stop.wait(step.seconds)
                continue
            # the contents (and any deferred media's bytes) exist only while the call
            # holds its share of the in-flight byte budget
            self._budget.acquire(step.nbytes)
            try:
                ticket = self.gate.acquire()
                try:
                    answer = self.transport.post(step.call())
                except BaseException as exc:
                    failure = exc
                self.gate.release(ticket, *calls.outcome(failure))
            except BaseException as exc:  # interrupted while waiting for a slot
                failure = exc
            finally:
                self._budget.release(step.nbytes)

    async def _acall(self, batch: list[PreparedItem], stop: asyncio.Event) -> Answered:
        """The same steps on this event loop's byte budget (and the same window)."""
        steps = self._attempts(batch, stop)
        budget = self._async_budget()
        answer: Answer | None = None
        failure: BaseException | None = None
        while True:
            try:
                step = steps.send(answer) if failure is None else steps.throw(failure)
            except StopIteration as done:
                return done.value
            answer, failure = None, None
            if isinstance(step, calls.Pause):
                await _apause(stop, step.seconds)
                continue
            await budget.aacquire(step.nbytes)
            try:
                ticket = await self.gate.aacquire()
                try:
                    answer = await self.transport.apost(step.call())
                except BaseException as exc:
                    failure = exc
                self.gate.release(ticket, *calls.outcome(failure))
            except BaseException as exc:  # cancelled while waiting for a slot
                failure = exc
            finally:
                await budget.arelease(step.nbytes)

    def _async_budget(self) -> AsyncByteBudget:
        loop_id = id(asyncio.get_running_loop())
        budget = self._abudgets.get(loop_id)
        if budget is None:
            budget = self._abudgets[loop_id] = AsyncByteBudget(self.settings.max_inflight_bytes)
        return budget


async def _apause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if the run fails meanwhile."""
    if seconds <= 0 or stop.is_set():
        await asyncio.sleep(0)
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


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


def embed(inputs: Sequence[ItemLike], **settings: Any) -> list[list[float]]:
    """One-shot convenience: ``gemb2.embed(["text", Path("a.png")], dimensions=768)``."""
    with Embedder(**settings) as embedder:
        return embedder.embed(inputs)
