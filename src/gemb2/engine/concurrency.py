"""How many batch calls may be in flight: an AIMD window, shared by threads and tasks.

The quota a project has is unknown to the client, so the window learns it: it starts
small (``START``), grows by about one call per window of clean answers, and, when the
service says it is overloaded (a 429, a 503/504, a timeout), drops to its ceiling:
``SAFE`` of the calls the service accepted in the ``SPAN`` before the refused call
started (answered or still in flight, so the calls under way do not hide), as a rate,
times the latency; and to ``SAFE`` of itself at least (``DECREASE`` before any latency
is known). Once per round of calls: the calls already in flight when it shrank do not
shrink it again. Below the ceiling it grows fast; above it slowly (``PROBE``: about 100
clean answers to rise 5%, a probe, not a rush back into the wall). It never exceeds
``max_concurrency``. Calls start paced at the answers' latency divided by the window,
so that the window is a rate (6.3 calls in flight at 0.25 s a call: 25 starts a second,
evenly), not a burst. With ``adaptive_concurrency=False`` the window is
``max_concurrency``, unpaced: a plain semaphore.

``Gate.try_acquire`` makes every decision under one lock and says how long to wait;
``acquire`` waits in a thread, ``aacquire`` on an event loop (as ``calls.attempts`` does
for a call's steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["clean", "overload", "other"]

START = 4.0  # the first window: the fixed default before the window adapted
DECREASE = 0.7  # the window after an overload before any answer, as a share of it
SAFE = 0.95  # the ceiling: this share of the accepted rate times latency (and window)
SPAN = 2.0  # seconds of accepted starts (at least 4 latencies) that measure the rate
PROBE = 0.0005  # above the ceiling, grow this share of the window per clean answer
LATENCY_WEIGHT = 0.2  # weight of the newest clean answer in the latency average


@dataclass(frozen=True)
class Ticket:
    """One held slot: when its call started and in which round (decreases so far)."""

    started: float
    round: int


class Gate:
    """The window and the calls holding a slot in it; thread-safe, loop-agnostic."""

    def __init__(self, max_concurrency: int, *, adaptive: bool = True) -> None:
        self.limit = max_concurrency
        self.adaptive = adaptive
        self.window = min(START, float(max_concurrency)) if adaptive else float(max_concurrency)
        self.in_flight = 0
        self.peak = 0  # most calls ever in flight at once
        self.decreases = 0
        self._ceiling = float("inf")  # the window the accepted rate allows, once measured
        self._latency: float | None = None
        self._accepted: deque[float] = deque()  # starts of recent calls not refused
        self._next_start = 0.0
        self._lock = threading.Lock()
        self._waiters: list[Callable[[], None]] = []

    # -- the decision ----------------------------------------------------------------

    def try_acquire(self) -> Ticket | float | None:
        """A ticket (the slot is held), seconds to wait before asking again (paced), or
        None: the window is full, ask again when a call ends."""
        with self._lock:
            if self.in_flight >= max(1, int(self.window + 0.999)):
                return None
            now = time.monotonic()
            if now < self._next_start:
                return self._next_start - now
            if self.adaptive and self._latency is not None:
                self._next_start = max(now, self._next_start) + self._latency / self.window
            if self.adaptive:
                self._accepted.append(now)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return Ticket(now, self.decreases)

    def release(self, ticket: Ticket, outcome: Outcome, pause: float = 0.0) -> None:
        """The call of ``ticket`` ended with ``outcome``: free its slot and adapt. After
        a 429, no call waiting for a slot starts for ``pause`` seconds (the calls that
        booked their turn with the rate limiter before the 429 wait here)."""
        with self._lock:
            self.in_flight -= 1
            if self.adaptive:
                self._adapt(ticket, outcome)
            if pause > 0:
                self._next_start = max(self._next_start, time.monotonic() + pause)
            waiters, self._waiters = self._waiters, []
        for wake in waiters:
            wake()

    def _adapt(self, ticket: Ticket, outcome: Outcome) -> None:
        now = time.monotonic()
        span = max(SPAN, 4 * (self._latency or 0.0))
        while self._accepted and self._accepted[0] < now - 2 * span:
            self._accepted.popleft()
        if outcome == "clean":
            took = now - ticket.started
            lat = self._latency
            self._latency = took if lat is None else lat + LATENCY_WEIGHT * (took - lat)
            w = self.window
            if w < self._ceiling:  # one more call per clean answer: doubles each round
                w = min(w + 1.0, self._ceiling)
            else:
                w += PROBE * w
            self.window = min(w, float(self.limit))
            return
        if outcome != "overload":
            return
        with contextlib.suppress(ValueError):  # refused: not a start the service accepted
            self._accepted.remove(ticket.started)
        if ticket.round != self.decreases:
            return  # once per round: the calls sent before the last decrease do not count
        self.decreases += 1
        if self._latency is None:  # no answer yet: no rate to measure
            self.window = self._ceiling = max(DECREASE * self.window, 0.1)
            return
        since = ticket.started - span
        took = sum(1 for t in self._accepted if since <= t < ticket.started)
        # over the whole span, even this early: a burst let through is not a rate
        self._ceiling = SAFE * min(took / span * self._latency, self.window)
        self.window = max(self._ceiling, 0.1)
        self._next_start = now + self._latency / self.window  # a paced interval first

    # -- the waiting edges -------------------------------------------------------------

    def acquire(self) -> Ticket:
        """Wait in this thread for a slot."""
        while True:
            woken = threading.Event()
            with self._lock:
                self._waiters.append(woken.set)
            got = self.try_acquire()
            if isinstance(got, Ticket):
                self._forget(woken.set)
                return got
            woken.wait(got)
            self._forget(woken.set)

    async def aacquire(self) -> Ticket:
        """Wait on this event loop for a slot."""
        loop = asyncio.get_running_loop()
        while True:
            woken = asyncio.Event()

            def wake(event: asyncio.Event = woken) -> None:
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    loop.call_soon_threadsafe(event.set)

            with self._lock:
                self._waiters.append(wake)
            got = self.try_acquire()
            if isinstance(got, Ticket):
                self._forget(wake)
                return got
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken.wait(), got)
            self._forget(wake)

    def _forget(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._waiters:
                self._waiters.remove(wake)
