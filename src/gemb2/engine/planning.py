"""Planning a run: which prepared items need a call, which calls, and landing their answers.

``embed`` and ``aembed`` differ only in how they send (threads or tasks); everything else
of a run lives here once: cache hits are served, identical requests are sent once, the
rest are cut into calls at the item count and payload limits, and each answered call
lands (usage, results in input order, cache, ``on_batch``, progress).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from google.genai import types
from tqdm.auto import tqdm

from gemb2.engine.cache import VectorCache
from gemb2.engine.usage import CallUsage, Usage
from gemb2.errors import ResponseMismatchError
from gemb2.inputs.media import Item

OnBatch = Callable[[list[int], list[list[float]]], None]


@dataclass(frozen=True)
class PreparedItem:
    """One input checked against the model's limits and conditioned for the task: what
    ``Embedder.prepare`` returns, and what online calls and Batch Mode requests are built
    from. Nothing here has been sent.

    ``index`` is the input's position; ``text`` the conditioned text sent instead of a
    text-only item's own (its task prefix), None for an item sent as it is; ``task_type``
    and ``title`` the request options (``gemini-embedding-001``); ``tokens`` the estimated
    input tokens by modality; ``size`` the bytes it adds to a call; ``key`` its address in
    the vector cache (empty when the Embedder has no cache)."""

    index: int
    item: Item
    text: str | None
    task_type: str | None
    title: str | None
    tokens: dict[str, int]
    modality: str
    size: int
    key: str

    @property
    def content(self) -> types.Content:
        """The SDK Content, built on demand (Batch Mode's inline jobs send these; online
        calls build their body from ``item`` and ``text`` when they are sent)."""
        return self.item.to_content(self.text)


@dataclass(frozen=True)
class Answered:
    """A batch's answer, checked: its vectors in batch order, the billed tokens the answer
    reported, and the attempts it took."""

    vectors: list[list[float]]
    billed_tokens: int | None
    attempts: int


def inline_bytes(batch: list[PreparedItem]) -> int:
    """Media bytes a call sends inline (text is small: it never waits for the budget)."""
    return sum(m.size for p in batch for m in p.item.media)


def distinct(todo: list[PreparedItem]) -> tuple[list[PreparedItem], dict[int, list[int]]]:
    """The first of each group of identical requests (same options and content sent),
    and the input indices of the others by their first's index. Grouped by what is
    cheap to compare (the text sent, or each part's text or type, size and URI); only
    media items equal on all of that are told apart by content digest (a read)."""
    groups: dict[tuple[Any, ...], list[PreparedItem]] = {}
    for p in todo:
        if p.text is not None:  # a conditioned text is sent alone, as it is
            sent_as: Any = p.text
        else:
            sent_as = tuple(
                x if isinstance(x, str) else (x.mime_type, x.size, x.uri) for x in p.item.parts
            )
        groups.setdefault((p.task_type, p.title, sent_as), []).append(p)
    sent: list[PreparedItem] = []
    copies: dict[int, list[int]] = {}
    for group in groups.values():
        if len(group) > 1 and group[0].item.media:
            by_content: dict[tuple[str, ...], list[PreparedItem]] = {}
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


def cut_into_calls(
    prepared: list[PreparedItem], max_items: int, max_bytes: int
) -> list[list[PreparedItem]]:
    """Group by request options (one call has one set), then cut at the item count and
    the payload size; one item over ``max_bytes`` goes alone."""
    groups: dict[tuple[str | None, str | None], list[PreparedItem]] = {}
    for p in prepared:
        groups.setdefault((p.task_type, p.title), []).append(p)
    batches: list[list[PreparedItem]] = []
    for group in groups.values():
        cuts = cut_points([p.size for p in group], max_items, max_bytes)
        batches.extend(group[start:stop] for start, stop in cuts)
    return batches


def cut_points(sizes: list[int], max_items: int, max_bytes: int) -> list[tuple[int, int]]:
    """Where a run of items of these sizes is cut into calls: ``start``..``stop`` each,
    at most ``max_items`` and ``max_bytes`` (one item over ``max_bytes`` alone)."""
    out: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, s in enumerate(sizes):
        if i > start and (i - start >= max_items or size + s > max_bytes):
            out.append((start, i))
            start, size = i, 0
        size += s
    if sizes:
        out.append((start, len(sizes)))
    return out


def threads_worth_starting(
    batches: list[list[PreparedItem]], max_inflight_bytes: int, max_concurrency: int
) -> int:
    """No more threads than calls the byte budget lets run at once (each thread's own
    allocator arena keeps the memory its calls touched)."""
    room, fit = max_inflight_bytes, 0
    for size in sorted(inline_bytes(b) for b in batches):
        if fit and size > room:
            break
        room -= size
        fit += 1
    return min(max_concurrency, fit)


class EmbedRun:
    """One ``embed`` or ``aembed`` call, whichever driver sends its batches: the vectors in
    input order, the calls to send, landing each answer, and the run's failure.

    The first failure stops the run: ``stop`` is set, so no call (first attempt or retry)
    is sent after it, while calls already sent finish and land (they are paid for). A
    context manager: leaving it closes the progress bar."""

    def __init__(
        self,
        prepared: list[PreparedItem],
        *,
        cache: VectorCache | None,
        usage: Usage,
        on_batch: OnBatch | None,
        max_items: int,
        max_bytes: int,
        progress: bool,
        stop: threading.Event | asyncio.Event,
        total: int | None = None,
    ) -> None:
        n = len(prepared) if total is None else total
        self.results: list[list[float] | None] = [None] * n
        self.failure: BaseException | None = None
        self.stop = stop
        self._cache, self._usage, self._on_batch = cache, usage, on_batch
        self._max_items, self._max_bytes = max_items, max_bytes
        self._copies: dict[int, list[int]] = {}
        # a streamed run (``total`` given) also finds copies across its spans
        self._firsts: dict[tuple[Any, ...], int] | None = None if total is None else {}
        self._bar = tqdm(total=n, disable=not progress, unit="item", desc="embedding")
        self.batches = self.add(prepared)

    def add(self, prepared: list[PreparedItem]) -> list[list[PreparedItem]]:
        """The calls for more of the run's items (a streamed run adds them span by span;
        its ``total`` sized the results): cache hits are served, copies noted."""
        todo = self._serve_from_cache(prepared)
        # identical items (copies of a file, the blank pieces of a PDF) are sent once;
        # their copies land with the first
        sent, copies = distinct(todo)
        self._copies.update(copies)
        if self._firsts is not None:
            sent = self._copies_of_earlier(sent)
        self._bar.update(len(prepared) - len(sent))
        return cut_into_calls(sent, self._max_items, self._max_bytes)

    def _copies_of_earlier(self, sent: list[PreparedItem]) -> list[PreparedItem]:
        """Of a span's distinct items, those not sent in an earlier span; a copy lands
        with its first (now, if that has landed). Media are told apart by digest (already
        taken by the checks)."""
        assert self._firsts is not None
        out = []
        for p in sent:
            parts = tuple(
                x if isinstance(x, str) else (x.mime_type, x.uri, x.digest) for x in p.item.parts
            )
            key = (p.task_type, p.title, p.text if p.text is not None else parts)
            first = self._firsts.setdefault(key, p.index)
            if first == p.index:
                out.append(p)
                continue
            mine = [p.index, *self._copies.pop(p.index, [])]
            vector = self.results[first]
            if vector is None:  # in flight (or failed: then the run fails)
                self._copies.setdefault(first, []).extend(mine)
                continue
            for j in mine:
                self.results[j] = vector
            self._usage.record_deduplicated(len(mine))
            if self._on_batch:
                self._on_batch(mine, [vector] * len(mine))
        return out

    def _serve_from_cache(self, prepared: list[PreparedItem]) -> list[PreparedItem]:
        if self._cache is None or not prepared:
            return prepared
        hits = self._cache.get_many(p.key for p in prepared)
        if not hits:
            return prepared
        done = [p for p in prepared if p.key in hits]
        for p in done:
            self.results[p.index] = hits[p.key]
        self._usage.record_cached(len(done))
        if self._on_batch:
            self._on_batch([p.index for p in done], [hits[p.key] for p in done])
        return [p for p in prepared if p.key not in hits]

    def land(self, batch: list[PreparedItem], answered: Answered) -> None:
        """An answered batch: usage, its vectors (and its copies') in place, the cache,
        ``on_batch``, the progress bar."""
        self._record(batch, answered.billed_tokens, answered.attempts)
        vectors = answered.vectors
        for p, v in zip(batch, vectors, strict=True):
            self.results[p.index] = v
        if self._cache is not None:
            self._cache.put_many({p.key: v for p, v in zip(batch, vectors, strict=True)})
        indices = [p.index for p in batch]
        if self._copies:
            more, values = [], []
            for i, v in zip(indices, vectors, strict=True):
                for j in self._copies.get(i, ()):
                    self.results[j] = v
                    more.append(j)
                    values.append(v)
            self._usage.record_deduplicated(len(more))
            indices, vectors = indices + more, list(vectors) + values
        if self._on_batch:
            self._on_batch(indices, vectors)
        self._bar.update(len(batch))
        if not self._bar.disable:  # the running cost by modality
            self._bar.set_postfix_str(self._usage.cost_line(), refresh=False)

    def _record(self, batch: list[PreparedItem], billed: int | None, attempts: int) -> None:
        tokens: Counter[str] = Counter()
        for p in batch:  # (half the CPU of Counter.update, which checks for a Mapping)
            for modality, n in p.tokens.items():
                tokens[modality] += n
        self._usage.record(
            CallUsage(
                items=len(batch),
                modalities=dict(Counter(p.modality for p in batch)),
                tokens=dict(tokens),
                billed_tokens=billed,
                attempts=attempts,
            )
        )

    def settle(self, batch: list[PreparedItem], fut: Future[Answered]) -> bool:
        """Land a finished call's answer, even after a failure (nothing paid for is lost),
        or keep its failure; True if the calls not started yet must now be cancelled."""
        exc = fut.exception()
        if exc is None:
            try:
                self.land(batch, fut.result())
                return False
            except Exception as landing:  # on_batch (or the cache) failed
                exc = landing
        return self.fail(exc)

    def fail(self, exc: BaseException) -> bool:
        """Keep the run's first failure (True if ``exc`` is it) and stop sending."""
        if self.failure is not None:
            return False
        self.failure = exc
        self.stop.set()
        return True

    def vectors(self) -> list[list[float]]:
        """One vector per input, in input order; raises the run's failure if it had one."""
        if self.failure is not None:
            raise self.failure
        missing = [i for i, v in enumerate(self.results) if v is None]
        if missing:  # cannot happen unless a batch was lost: never return misaligned output
            raise ResponseMismatchError(f"no vector for items {missing[:10]}", items=missing)
        return self.results  # type: ignore[return-value]

    def __enter__(self) -> EmbedRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.close()
