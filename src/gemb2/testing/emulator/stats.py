"""Counters that tests read to check what reached the wire and what was injected."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

LAST_BODIES = 50
LAST_TIMES = 10_000
# Bodies larger than this keep only a prefix of each long base64 string, so a
# long-running emulator fed with video does not hold gigabytes of copies.
_BODY_KEEP_BYTES = 4 * 1024 * 1024
_DATA_PREFIX = 64


@dataclass
class EmulatorStats:
    """What the emulator saw; read freely, changed only by the server under its lock."""

    requests: int = 0
    items: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    last_bodies: list[dict[str, Any]] = field(default_factory=list)
    # time.monotonic() as each embedding call arrived (the last LAST_TIMES): the client's
    # pacing, measured where it lands
    arrivals: list[float] = field(default_factory=list)
    tasks: dict[str, int] = field(default_factory=dict)
    dimensions: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, body: dict[str, Any] | None, raw_size: int) -> None:
        with self._lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            del self.arrivals[:-LAST_TIMES]
            if body is not None:
                self.last_bodies.append(body if raw_size <= _BODY_KEEP_BYTES else _shrink(body))
                del self.last_bodies[:-LAST_BODIES]

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_items(self, n: int, tasks: list[str], dims: list[int]) -> None:
        with self._lock:
            self.items += n
            for t in tasks:
                self.tasks[t] = self.tasks.get(t, 0) + 1
            for d in dims:
                self.dimensions[d] = self.dimensions.get(d, 0) + 1

    def reset(self) -> None:
        """Zero in place, so references held by tests stay valid."""
        with self._lock:
            self.requests = 0
            self.items = 0
            self.faults.clear()
            self.last_bodies.clear()
            self.arrivals.clear()
            self.tasks.clear()
            self.dimensions.clear()


def _shrink(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shrink(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shrink(v) for v in value]
    if isinstance(value, str) and len(value) > 4096:
        return f"{value[:_DATA_PREFIX]}...({len(value)} chars)"
    return value
