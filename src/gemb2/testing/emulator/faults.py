"""Rate limiting and seeded fault injection, so client retry logic meets real failure modes."""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Fault:
    """One injected failure: ``kind`` is "429", "500", "503", "slow", "drop", "rate_limit",
    or one of the malformed 200 answers "truncated", "nan", "wrong_count", "wrong_dim"."""

    kind: str
    retry_delay: float = 0.0


class RateLimiter:
    """A sliding window over accepted requests; over the limit says how long until a slot frees.

    The window admits ``rpm * seconds / 60`` requests (60 s by default). A fractional
    capacity stretches the window so that ``capacity`` requests fit in
    ``seconds * capacity / (rpm * seconds / 60)`` (exactly ``seconds`` for whole numbers).
    """

    def __init__(self, rpm: float | None, seconds: float = WINDOW_SECONDS) -> None:
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self.set_rpm(rpm, seconds)

    def set_rpm(self, rpm: float | None, seconds: float = WINDOW_SECONDS) -> None:
        with self._lock:
            self.rpm = rpm
            per_window = rpm * seconds / WINDOW_SECONDS if rpm else 0.0
            self.capacity = max(1, math.floor(per_window)) if rpm else 0
            self.window = seconds * self.capacity / per_window if rpm else seconds
            # the shortest delay a 429 names: 1 s, less for a window shorter than 10 s
            self.least_wait = min(1.0, self.window / 10)
            self._times.clear()

    def acquire(self, now: float | None = None) -> float | None:
        """Take a slot and return None, or return the seconds until one frees (at least
        ``least_wait``)."""
        if not self.rpm:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) < self.capacity:
                self._times.append(now)
                return None
            wait = self._times[0] + self.window - now
        return max(self.least_wait, wait)


class FaultDrawer:
    """Draws one number per request from a seeded generator: same seed and order, same faults."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def draw(self, rate: float, kinds: tuple[str, ...], retry_delay: float) -> Fault | None:
        with self._lock:
            u = self._rng.random()
            pick = self._rng.randrange(len(kinds)) if kinds else 0
        if not kinds or u >= rate:
            return None
        kind = kinds[pick]
        return Fault(kind=kind, retry_delay=retry_delay if kind == "429" else 0.0)


def malformed_answer(kind: str, answer: dict[str, Any]) -> bytes:
    """A 200's body that a client must refuse, from the good ``answer``: cut in half
    (valid Content-Length, invalid JSON), a bare ``NaN`` as the first value (JSON has no
    NaN), one vector too few (none for a single item), or the first vector one short."""
    if kind == "wrong_count":
        if "embeddings" in answer:
            answer = {**answer, "embeddings": answer["embeddings"][:-1]}
        else:
            answer = {k: v for k, v in answer.items() if k != "embedding"}
    elif kind == "wrong_dim":
        key = "embeddings" if "embeddings" in answer else "embedding"
        first = answer[key][0] if key == "embeddings" else answer[key]
        short = {**first, "values": first["values"][:-1]}
        answer = {**answer, key: [short, *answer[key][1:]] if key == "embeddings" else short}
    data = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "nan":
        return _FIRST_VALUE.sub(b'"values":[NaN', data, count=1)
    return data


_FIRST_VALUE = re.compile(rb'"values":\[-?[0-9.eE+-]+')


def format_seconds(seconds: float) -> str:
    """A protobuf Duration as JSON writes it: "2s", "1.5s"."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"
