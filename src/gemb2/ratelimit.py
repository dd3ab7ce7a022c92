"""Client-side pacing of requests and tokens per minute, shared by threads and tasks."""

from __future__ import annotations

import asyncio
import threading
import time


class RateLimiter:
    """Two token buckets (requests, tokens) refilled continuously over a minute.

    ``reserve`` books capacity and returns how long the caller must wait, so the
    same object paces both the thread pool and asyncio tasks.
    """

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._lock = threading.Lock()
        now = time.monotonic()
        self._req_free_at = now
        self._tok_free_at = now

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def reserve(self, tokens: int = 0) -> float:
        if not self.active:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = now
            if self.rpm:
                start = max(start, self._req_free_at)
            if self.tpm and tokens:
                # a burst of up to one minute's tokens is allowed, then pace
                start = max(start, self._tok_free_at - 60.0)
            if self.rpm:
                self._req_free_at = max(self._req_free_at, start) + 60.0 / self.rpm
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
