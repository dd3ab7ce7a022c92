"""Streaming a large media run: read and check the next calls' items while earlier calls
are in flight, with the bytes read but not yet landed bounded.

Without it a run of 1,500 files reads and probes every one before the first call, and
holds all their bytes until the end. Here the inputs are cut up front into spans of one
call's worth (the engine's own cut: <= ``max_items`` items, <= ``max_call_bytes``, from
each file's size on disk), after a cheap check of every input (it exists, is a regular
file, is not empty or over the inline limit) that runs before any call. Each span is
then coerced, probed and checked just ahead of its call, while ``ReadAhead`` keeps the
bytes of spans read but not landed within its limit (a span alone may exceed it).

A deeper fault (a PDF over the page limit, a corrupt video) is found when its span is
reached: the calls already sent finish and land (``on_batch``, the cache: nothing paid
for is lost), none is sent after it, and the item's error is raised.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from gemb2.engine.planning import Answered, EmbedRun, PreparedItem, cut_points
from gemb2.inputs.media import Item, ItemLike, Media

_PIL_GUESS = 0  # a PIL image's encoded size is unknown until it is encoded


@dataclass(frozen=True)
class Span:
    """Inputs ``start``..``stop`` (one call's worth), about ``nbytes`` of media."""

    start: int
    stop: int
    nbytes: int


def size_of(value: ItemLike, max_inline_bytes: int) -> tuple[int, bool]:
    """(bytes the input adds to a call, whether the cheap check doubts it): a path that
    is missing, not a regular file, empty or over ``max_inline_bytes`` is doubted (its
    full check then raises the same error it would raise unstreamed)."""
    if isinstance(value, str):
        return len(value), False
    if isinstance(value, os.PathLike):
        try:
            st = os.stat(value)
        except OSError:
            return 0, True
        size = st.st_size
        return size, not stat.S_ISREG(st.st_mode) or size == 0 or size > max_inline_bytes
    if isinstance(value, (bytes, bytearray)):
        return len(value), len(value) == 0 or len(value) > max_inline_bytes
    if isinstance(value, Media):
        return value.size, False
    if isinstance(value, Item):
        return sum(m.size for m in value.media), False
    if isinstance(value, (list, tuple)):
        parts = [size_of(v, max_inline_bytes) for v in value]
        return sum(s for s, _ in parts), any(d for _, d in parts)
    return _PIL_GUESS, False


def spans(sizes: list[int], max_items: int, max_bytes: int) -> list[Span]:
    """The inputs cut as ``cut_into_calls`` cuts them (one item over ``max_bytes`` alone)."""
    cuts = cut_points(sizes, max_items, max_bytes)
    return [Span(start, stop, sum(sizes[start:stop])) for start, stop in cuts]


@dataclass
class ReadAhead:
    """Media bytes read for spans whose calls have not all landed. One driver thread (or
    one event loop) takes and gives, so no lock. ``peak`` is what the tests read."""

    limit: int
    used: int = 0
    peak: int = 0
    _open: dict[int, tuple[int, int]] = field(default_factory=dict)  # span -> (bytes, calls)

    def fits(self, span: Span) -> bool:
        return self.used == 0 or self.used + span.nbytes <= self.limit

    def take(self, key: int, span: Span, calls: int) -> None:
        """Span ``key`` was read and cut into ``calls`` calls (0: all cached or copies)."""
        if calls == 0:
            return
        self._open[key] = (span.nbytes, calls)
        self.used += span.nbytes
        self.peak = max(self.peak, self.used)

    def landed(self, key: int) -> None:
        """One call of span ``key`` is done (landed or given up): its bytes go with the last."""
        nbytes, calls = self._open[key]
        if calls > 1:
            self._open[key] = (nbytes, calls - 1)
            return
        del self._open[key]
        self.used -= nbytes


Prepare = Callable[[Span], list[PreparedItem]]


def drive_threaded(
    run: EmbedRun,
    plan: list[Span],
    prepare: Prepare,
    call: Callable[[list[PreparedItem], threading.Event], Answered],
    stop: threading.Event,
    threads: int,
    ahead: ReadAhead,
) -> None:
    """Read span after span in this thread while a pool of ``threads`` posts the calls;
    each call lands here (between spans, or while a span waits for room)."""
    with ThreadPoolExecutor(threads, thread_name_prefix="gemb2") as pool:
        futures: dict[Future[Answered], tuple[list[PreparedItem], int]] = {}

        def land(block: bool) -> None:
            done, _ = wait(futures, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for fut in done:
                batch, key = futures.pop(fut)
                ahead.landed(key)
                if fut.cancelled():
                    continue
                if run.settle(batch, fut):  # the calls not started yet are not sent
                    for other in futures:
                        other.cancel()

        for key, span in enumerate(plan):
            while futures and not ahead.fits(span):
                land(block=True)
            if run.failure is not None:
                break
            try:
                batches = run.add(prepare(span))
            # a bad item (or Ctrl-C): what was sent lands, nothing more is sent
            except BaseException as exc:
                run.fail(exc)
                break
            ahead.take(key, span, len(batches))
            for batch in batches:
                futures[pool.submit(call, batch, stop)] = (batch, key)
            land(block=False)
        while futures:
            land(block=True)


async def drive_async(
    run: EmbedRun,
    plan: list[Span],
    prepare: Prepare,
    acall: Callable[[list[PreparedItem], asyncio.Event], Awaitable[Answered]],
    stop: asyncio.Event,
    ahead: ReadAhead,
) -> None:
    """The same on an event loop: spans are read in a worker thread, one task per call."""
    tasks: set[asyncio.Future[None]] = set()

    async def send(batch: list[PreparedItem], key: int) -> None:
        try:
            run.land(batch, await acall(batch, stop))
        except Exception as exc:
            run.fail(exc)
        finally:
            ahead.landed(key)

    try:
        for key, span in enumerate(plan):
            while tasks and not ahead.fits(span):
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                tasks -= done
            if run.failure is not None:
                break
            try:
                batches = run.add(await asyncio.to_thread(prepare, span))
            except Exception as exc:
                run.fail(exc)
                break
            ahead.take(key, span, len(batches))
            tasks.update(asyncio.ensure_future(send(b, key)) for b in batches)
        if tasks:
            await asyncio.wait(tasks)
    finally:  # cancelled from outside: cancel the calls too
        for t in tasks:
            t.cancel()
