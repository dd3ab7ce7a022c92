"""``embed`` and ``aembed`` run one implementation of each step (planning, cache, landing,
retrying, giving up): the same fault schedule from the emulator gives the same vectors,
the same counts, the same landed batches and the same error, whichever driver sends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gemb2 import Embedder, RetryExhaustedError, VectorCache
from gemb2.testing.emulator import Emulator
from gemb2.testing.emulator.faults import FaultDrawer

FAST: dict[str, Any] = {"dimensions": 128, "backoff_initial": 0.0, "backoff_max": 0.0}
TEXTS = [f"text number {i}" for i in range(6)]
DRIVERS = {"embed": False, "aembed": True}


class StoreDown(RuntimeError):
    pass


@dataclass
class Outcome:
    """What a run left behind, compared between the two drivers."""

    vectors: list[list[float]] | None = None
    error: BaseException | None = None
    landed: list[tuple[list[int], list[list[float]]]] = field(default_factory=list)
    usage: tuple[int, ...] = ()
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)


def _seed(kinds: tuple[str, ...], want: list[str]) -> int:
    """A seed whose first draws at a fault rate of 1.0 are ``want``, in order (the emulator
    draws one per request, in arrival order)."""

    def first(seed: int) -> list[str]:
        drawer = FaultDrawer(seed)
        return [getattr(drawer.draw(1.0, kinds, 0.0), "kind", "") for _ in want]

    return next(s for s in range(10_000) if first(s) == want)


def _run(
    emulator: Emulator,
    asynchronous: bool,
    knobs: dict[str, Any],
    *,
    fail_landing: bool = False,
    **kw: Any,
) -> Outcome:
    """Embed TEXTS with a fresh Embedder under ``knobs``, through one driver."""
    emulator.configure(**knobs)
    emulator.reset_stats()
    emb = Embedder(base_url=emulator.base_url, **{**FAST, **kw})
    out = Outcome()

    def on_batch(indices: list[int], vectors: list[list[float]]) -> None:
        out.landed.append((sorted(indices), vectors))
        if fail_landing:
            raise StoreDown("the vector store went away")

    try:
        if asynchronous:

            async def go() -> list[list[float]]:
                try:
                    return await emb.aembed(TEXTS, on_batch=on_batch)
                finally:
                    await emb.aclose()

            out.vectors = asyncio.run(go())
        else:
            with emb:
                out.vectors = emb.embed(TEXTS, on_batch=on_batch)
    except Exception as exc:
        out.error = exc
    u = emb.usage
    out.usage = (u.requests, u.retries, u.items, u.cached, u.deduplicated)
    out.requests = emulator.stats.requests
    out.faults = dict(emulator.stats.faults)
    return out


def test_retries_of_one_batch_are_the_same_for_embed_and_aembed(emulator: Emulator) -> None:
    kinds = ("503", "truncated", "429", "drop", "wrong_count")
    seed = _seed(kinds, ["drop", "truncated", "429", "503"])
    knobs = {"fault_rate": 1.0, "faults": kinds, "fail_first": 4, "retry_delay": 0.0}
    knobs["seed"] = seed
    want = Embedder(base_url=emulator.base_url, **FAST).embed(TEXTS)
    sync = _run(emulator, False, knobs, max_retries=5)
    asyn = _run(emulator, True, knobs, max_retries=5)
    assert sync.error is None and asyn.error is None
    assert sync.vectors == asyn.vectors == want
    assert sync.usage == asyn.usage == (5, 4, 6, 0, 0)
    assert sync.requests == asyn.requests == 5
    assert sync.faults == asyn.faults == {"drop": 1, "truncated": 1, "429": 1, "503": 1}
    assert sync.landed == asyn.landed == [([0, 1, 2, 3, 4, 5], want)]

    # one retry fewer than the faults: both give up after the same attempts, on the 503
    sync = _run(emulator, False, knobs, max_retries=3)
    asyn = _run(emulator, True, knobs, max_retries=3)
    assert isinstance(sync.error, RetryExhaustedError)
    assert isinstance(asyn.error, RetryExhaustedError)
    assert str(sync.error) == str(asyn.error)
    assert sync.error.attempts == asyn.error.attempts == 4
    assert sync.error.last.code == asyn.error.last.code == 503
    assert sync.usage == asyn.usage == (4, 3, 0, 0, 0)
    assert sync.requests == asyn.requests == 4
    assert sync.landed == asyn.landed == []


def test_a_batch_in_flight_when_another_fails_lands_for_embed_and_aembed(
    emulator: Emulator,
) -> None:
    """Two batches in flight; the first to arrive is answered slowly, the second fails
    for good at once. Both drivers send nothing more, let the call already sent finish
    and land it (it is paid for), then raise the failure."""
    kinds = ("slow", "503")
    knobs = {"fault_rate": 1.0, "faults": kinds, "fail_first": 2, "slow_seconds": 1.5}
    knobs["seed"] = _seed(kinds, ["slow", "503"])
    want = Embedder(base_url=emulator.base_url, **FAST).embed(TEXTS)
    kw = {"batch_size": 3, "max_concurrency": 2, "max_retries": 0}
    for name, asynchronous in DRIVERS.items():
        out = _run(emulator, asynchronous, knobs, **kw)
        assert isinstance(out.error, RetryExhaustedError), (name, out.error)
        assert out.error.attempts == 1 and out.error.last.code == 503, name
        assert out.faults == {"slow": 1, "503": 1}, name
        assert out.requests == 2, name
        assert len(out.landed) == 1, f"{name}: the answer in flight is landed, not dropped"
        indices, vectors = out.landed[0]
        assert len(indices) == 3 and vectors == [want[i] for i in indices], name
        assert out.usage == (2, 0, 3, 0, 0), name


@pytest.mark.parametrize("driver", DRIVERS)
def test_no_attempt_is_sent_after_the_run_failed(emulator: Emulator, driver: str) -> None:
    """The first batch to arrive is answered (slowly) and storing it fails; the other
    batch got a 503 and waits out a long backoff. The failure ends the run at once: the
    retry is not sent, by either driver."""
    kinds = ("slow", "503")
    knobs = {"fault_rate": 1.0, "faults": kinds, "fail_first": 2, "slow_seconds": 1.0}
    knobs["seed"] = _seed(kinds, ["slow", "503"])
    out = _run(
        emulator,
        DRIVERS[driver],
        knobs,
        fail_landing=True,
        batch_size=3,
        max_concurrency=2,
        max_retries=3,
        backoff_initial=60.0,
        backoff_max=60.0,
    )
    assert isinstance(out.error, StoreDown)
    assert len(out.landed) == 1  # the slow answer reached on_batch, which failed
    assert out.requests == 2 and out.faults == {"slow": 1, "503": 1}
    assert out.usage[:2] == (2, 0)  # no retry went out


def test_cache_hits_and_copies_land_the_same_for_embed_and_aembed(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Planning is shared: cache hits are served and identical items sent once, the same
    way on both paths."""
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "delta"]
    seen = []
    for name, asynchronous in DRIVERS.items():
        emb = Embedder(
            base_url=emulator.base_url,
            cache=VectorCache(tmp_path / f"{name}.sqlite"),
            batch_size=2,
            **FAST,
        )
        emb.embed(["gamma"])  # a hit in the cache
        emulator.reset_stats()
        landed: list[list[int]] = []

        def on_batch(indices: list[int], vectors: list[list[float]], into: Any = landed) -> None:
            into.append(sorted(indices))

        if asynchronous:

            async def go(emb: Embedder = emb) -> list[list[float]]:
                try:
                    return await emb.aembed(texts, on_batch=on_batch)
                finally:
                    await emb.aclose()

            got = asyncio.run(go())
        else:
            got = emb.embed(texts, on_batch=on_batch)
        u = emb.usage
        seen.append((got, sorted(landed), u.cached, u.deduplicated, u.items, u.requests))
        assert emulator.stats.requests == 2, name  # alpha and beta, then delta
    assert seen[0] == seen[1]
    assert sorted(seen[0][1]) == [[0, 1, 2, 4], [3], [5]]
    assert seen[0][2:] == (1, 2, 1 + 3, 1 + 2)
