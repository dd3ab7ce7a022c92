"""The Embedder's calls go through its rate limiter: requests and tokens per minute, the
pacing measured where the calls land (the emulator's arrival times).

Only lower bounds are asserted: a call may never arrive before its turn, however slow
the machine; a loaded machine can only make the gaps longer. A call's turn comes after
the limiter's wait, so each bound below is exact (a few ms of clock slack aside)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from gemb2 import Embedder
from gemb2.testing.emulator import Emulator

SLACK = 0.01  # seconds: clock granularity and asyncio's early wake-up


def make(emulator: Emulator, **kw: Any) -> Embedder:
    return Embedder(base_url=emulator.base_url, dimensions=128, batch_size=1, **kw)


def _since(start: float, emulator: Emulator) -> list[float]:
    return [t - start for t in sorted(emulator.stats.arrivals)]


def test_requests_per_minute_space_the_calls(emulator: Emulator) -> None:
    """rpm=120 with one worker: one call every 0.5 s, the first at once."""
    emb = make(emulator, requests_per_minute=120, max_concurrency=1)
    texts = [f"paced text {i}" for i in range(5)]
    start = time.monotonic()
    out = emb.embed(texts)
    assert len(out) == 5 and emulator.stats.requests == 5
    arrivals = _since(start, emulator)
    for k, at in enumerate(arrivals):
        assert at >= 0.5 * k - SLACK, (k, arrivals)
    gaps = [b - a for a, b in itertools.pairwise(arrivals[1:])]
    assert min(gaps) >= 0.25, arrivals  # each call waits its turn (the first builds the client)


async def test_async_calls_burst_up_to_the_workers_then_keep_the_rate(
    emulator: Emulator,
) -> None:
    """Three tasks may start together; after that burst the calls are spaced so that no
    60 s window holds more than rpm: 60 / (120 - 3 + 1) s apart."""
    emb = make(emulator, requests_per_minute=120, max_concurrency=3)
    interval = 60 / (120 - 3 + 1)
    start = time.monotonic()
    out = await emb.aembed([f"async paced {i}" for i in range(7)])
    await emb.aclose()
    assert len(out) == 7
    arrivals = _since(start, emulator)
    for k, at in enumerate(arrivals):
        assert at >= interval * max(0, k - 2) - SLACK, (k, arrivals)
    assert arrivals[-1] >= 4 * interval - SLACK


def test_tokens_per_minute_pace_the_calls_after_a_minutes_worth(emulator: Emulator) -> None:
    """A first call as large as the whole minute's tokens goes at once; so does the next
    (the bucket allows a minute's worth in advance); each later call waits until the
    tokens sent before it fit in the minute: 60 s x tokens / tokens_per_minute."""
    big = " ".join(f"word{i}" for i in range(450))
    texts = [big] + [f"a small text number {i}" for i in range(4)]
    tokens = [p.tokens["text"] for p in make(emulator).prepare(texts)]
    tpm = tokens[0]  # the first call spends a whole minute's tokens
    emb = make(emulator, tokens_per_minute=tpm, max_concurrency=1)
    start = time.monotonic()
    out = emb.embed(texts)
    assert len(out) == 5
    arrivals = _since(start, emulator)
    due = [max(0.0, 60 * sum(tokens[:k]) / tpm - 60) for k in range(len(texts))]
    assert due[-1] >= 1.2, (tokens, due)  # the test has teeth: at least 1.2 s of pacing
    for k, at in enumerate(arrivals):
        assert at >= due[k] - SLACK, (k, arrivals, due)
