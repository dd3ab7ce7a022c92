"""Client-side pacing of requests and tokens per minute, shared by threads and tasks."""

from __future__ import annotations

import asyncio
import threading
import time

# seconds every sharer pauses after a 429 that named no retry delay
DEFAULT_THROTTLE = 1.0


class RateLimiter:
    """Two token buckets (requests, tokens) refilled continuously over a minute.

    Requests follow the generic cell rate algorithm: a burst of ``burst``, then one per
    interval; any 60 s window holds at most ``requests_per_minute`` of them.

    ``reserve`` books capacity and returns how long the caller must wait, so the
    same object paces both the thread pool and asyncio tasks. ``throttled`` (a 429 was
    seen) pauses every later booking. This one lives in one process;
    ``shared_limiter`` keeps the same bookings in a SQLite file or Redis.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        burst: int = 1,
    ) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        # up to ``burst`` requests may start together (e.g. the first call of each worker);
        # the interval after them is stretched so no 60 s window holds more than rpm
        self.burst = max(1, min(burst, int(requests_per_minute or 1)))
        self._interval = 60.0 / (self.rpm - self.burst + 1) if self.rpm else 0.0
        self._lock = threading.Lock()
        now = time.monotonic()
        self._req_free_at = now
        self._tok_free_at = now
        self._paused_until = now

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def throttled(self, seconds: float | None) -> None:
        """A 429 was seen: every sharer pauses that long (or ``DEFAULT_THROTTLE``)."""
        pause = DEFAULT_THROTTLE if seconds is None else max(0.0, seconds)
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + pause)

    def reserve(self, tokens: int = 0) -> float:
        if not self.active and time.monotonic() >= self._paused_until:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._paused_until)
            if self.rpm:
                start = max(start, self._req_free_at - (self.burst - 1) * self._interval)
            if self.tpm and tokens:
                # a burst of up to one minute's tokens is allowed, then pace
                start = max(start, self._tok_free_at - 60.0)
            if self.rpm:
                self._req_free_at = max(self._req_free_at, start) + self._interval
            if self.tpm and tokens:
                self._tok_free_at = max(self._tok_free_at, now) + 60.0 * tokens / self.tpm
            return max(0.0, start - now)

    def wait(self, tokens: int = 0) -> None:
        delay = self.reserve(tokens)
        if delay:
            time.sleep(delay)

    async def await_(self, tokens: int = 0) -> None:
        delay = self.reserve(tokens)
        if delay:
            await asyncio.sleep(delay)
