"""The in-flight byte budget: how much inline media concurrent calls may hold at once.

A call's contents (and any deferred media's bytes) exist only while it holds its share,
so the budget bounds memory whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import threading


class ByteBudget:
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


class AsyncByteBudget(ByteBudget):
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
