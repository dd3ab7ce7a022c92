"""Adaptive concurrency: the window of calls in flight grows on clean answers up to
``max_concurrency`` and never beyond, shrinks after 429s, 503s and timeouts, and a 429
pauses every sharer of the rate limiter for its retry delay; the thread and asyncio
drivers behave the same.

Calls in flight are counted where they land (a FakeTransport that counts the calls
inside ``post``), not from the client's own bookkeeping alone."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from gemb2 import Embedder, EmbedSettings
from gemb2.engine import concurrency
from gemb2.engine.concurrency import SAFE, START, Gate, Ticket
from gemb2.engine.limiter_backends import limiter_for
from gemb2.engine.ratelimit import DEFAULT_THROTTLE
from gemb2.errors import RateLimitError, RetryExhaustedError
from gemb2.testing import FakeTransport
from gemb2.transport.base import Answer, EmbedCall


class CountingTransport(FakeTransport):
    """The fake service, counting how many calls it holds at once."""

    def __init__(self, **knobs: Any) -> None:
        super().__init__(**knobs)
        self.now = 0
        self.peak = 0
        self._count = threading.Lock()

    def post(self, call: EmbedCall) -> Answer:
        with self._count:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return super().post(call)
        finally:
            with self._count:
                self.now -= 1


def run(emb: Embedder, texts: list[str], mode: str) -> list[list[float]]:
    if mode == "sync":
        return emb.embed(texts)
    return asyncio.run(emb.aembed(texts))


def texts(n: int, tag: str = "t") -> list[str]:
    return [f"{tag} text {i}" for i in range(n)]


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_window_grows_on_clean_answers_up_to_max_concurrency(mode: str) -> None:
    """From START calls in flight to max_concurrency, never more, with every vector back."""
    fake = CountingTransport(latency_per_request=0.03)
    emb = Embedder(transport=fake, dimensions=128, batch_size=1, max_concurrency=7)
    out = run(emb, texts(120), mode)
    assert len(out) == 120 and all(len(v) == 128 for v in out)
    assert fake.stats.requests == 120
    assert emb.gate.window == 7.0  # grew to the cap and stopped there
    assert START < fake.peak <= 7
    # (asyncio.to_thread's pool may hold fewer at once than the window lets go)
    assert fake.peak <= emb.gate.peak <= 7


@pytest.mark.parametrize("mode", MODES)
def test_an_explicit_max_concurrency_below_the_start_caps_from_the_first_call(mode: str) -> None:
    fake = CountingTransport(latency_per_request=0.02)
    emb = Embedder(transport=fake, dimensions=128, batch_size=1, max_concurrency=2)
    assert len(run(emb, texts(30), mode)) == 30
    assert fake.peak == 2 and emb.gate.window == 2.0


@pytest.mark.parametrize("mode", MODES)
def test_fixed_concurrency_holds_max_concurrency_in_flight(mode: str) -> None:
    """adaptive_concurrency=False: a plain semaphore of max_concurrency."""
    fake = CountingTransport(latency_per_request=0.05)
    emb = Embedder(
        transport=fake,
        dimensions=128,
        batch_size=1,
        max_concurrency=5,
        adaptive_concurrency=False,
    )
    assert len(run(emb, texts(30), mode)) == 30
    assert fake.peak == 5  # (asyncio.to_thread's default pool holds 5 or more)
    assert emb.gate.window == 5.0 and emb.gate.decreases == 0


def test_the_default_cap_leaves_room_to_reach_a_quota() -> None:
    """Default settings: start at 4 in flight, adapt, up to 16 (1,500 requests/min at
    250 ms a call needs about 7 in flight)."""
    s = EmbedSettings()
    assert (s.max_concurrency, s.adaptive_concurrency) == (16, True)
    emb = Embedder(transport=FakeTransport(), dimensions=128)
    assert emb.gate.window == START == 4.0 and emb.gate.limit == 16


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["429", "503", "drop"])
def test_window_shrinks_after_overload(mode: str, kind: str) -> None:
    """Grown on clean answers, then the service answers 429/503 or drops the connection
    (a timeout's kind): the window is cut, and every item still gets its vector."""
    fake = CountingTransport(latency_per_request=0.02, retry_delay=0.01)
    emb = Embedder(
        transport=fake,
        dimensions=128,
        batch_size=1,
        max_concurrency=8,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    run(emb, texts(60, "warm"), mode)
    grown = emb.gate.window
    assert grown > START
    fake.configure(fault_rate=1.0, faults=[kind], fail_first=3, retry_delay=0.01)
    out = run(emb, texts(20, "hit"), mode)
    assert len(out) == 20
    assert fake.stats.faults[kind] == 3
    assert emb.gate.decreases >= 1
    assert emb.gate.window < grown


@pytest.mark.parametrize("mode", MODES)
def test_a_refusal_is_not_an_overload(mode: str) -> None:
    """A 500 (not an overload signal) is retried but leaves the window alone."""
    fake = CountingTransport(latency_per_request=0.01)
    fake.configure(fault_rate=1.0, faults=["500"], fail_first=2)
    emb = Embedder(
        transport=fake, dimensions=128, batch_size=1, max_concurrency=8, backoff_initial=0.01
    )
    assert len(run(emb, texts(10), mode)) == 10
    assert fake.stats.faults["500"] == 2
    assert emb.gate.decreases == 0


@pytest.mark.parametrize("retry_info", [True, False])
def test_the_emulator_names_a_retry_delay_or_none(retry_info: bool) -> None:
    fake = FakeTransport(fault_rate=1.0, faults=["429"], retry_delay=7.0, retry_info=retry_info)
    emb = Embedder(transport=fake, dimensions=128, max_retries=0)
    with pytest.raises(RetryExhaustedError) as err:
        emb.embed(["x"])
    assert isinstance(err.value.last, RateLimitError)
    assert err.value.last.retry_after == (7.0 if retry_info else None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("retry_info", [True, False])
def test_a_429_pauses_every_sharer_of_a_sqlite_limiter(
    tmp_path: Path, mode: str, retry_info: bool
) -> None:
    """Embedder A's 429 (retryDelay 30 s, or none: DEFAULT_THROTTLE) is stored in the
    shared limiter: a limiter opened on the same file later has to wait that long, and a
    second Embedder sends nothing while the 30 s pause lasts."""
    url = f"sqlite:///{tmp_path / 'quota.sqlite'}"
    a_fake = FakeTransport(fault_rate=1.0, faults=["429"], retry_delay=30.0, retry_info=retry_info)
    a = Embedder(transport=a_fake, dimensions=128, limiter=url, max_retries=0)
    with pytest.raises(RetryExhaustedError):
        run(a, ["a"], mode)
    wait = limiter_for(EmbedSettings(limiter=url)).reserve()
    if not retry_info:
        assert 0.5 * DEFAULT_THROTTLE < wait <= DEFAULT_THROTTLE
        return
    assert 25.0 < wait <= 30.0
    b_fake = FakeTransport()
    b = Embedder(transport=b_fake, dimensions=128, limiter=url)

    async def briefly() -> None:
        await asyncio.wait_for(b.aembed(["b"]), 1.5)

    if mode == "async":
        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(briefly())
    else:
        done = threading.Event()
        worker = threading.Thread(target=lambda: (b.embed(["b"]), done.set()), daemon=True)
        worker.start()
        assert not done.wait(1.5)
    assert b_fake.calls == []  # paused, not sent


@pytest.mark.parametrize("mode", MODES)
def test_a_429_s_retry_delay_is_honoured_by_the_retry(mode: str) -> None:
    """The call answered 429 with retryDelay 30 s waits for it: with a pause cut short by
    nothing, no second attempt is sent within a second."""
    fake = FakeTransport(fault_rate=1.0, faults=["429"], retry_delay=30.0, fail_first=1)
    emb = Embedder(transport=fake, dimensions=128, max_retries=1)

    async def briefly() -> None:
        await asyncio.wait_for(emb.aembed(["x"]), 1.0)

    if mode == "async":
        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(briefly())
    else:
        done = threading.Event()
        threading.Thread(target=lambda: (emb.embed(["x"]), done.set()), daemon=True).start()
        assert not done.wait(1.0)
    assert len(fake.calls) == 1


def test_retries_run_out_as_before_under_a_429_storm() -> None:
    """Every answer a 429 with a tiny delay: the window falls to its floor, the call gives
    up after its retries, and nothing is returned half done."""
    fake = FakeTransport(fault_rate=1.0, faults=["429"], retry_delay=0.001)
    emb = Embedder(
        transport=fake, dimensions=128, max_retries=2, backoff_initial=0.001, backoff_max=0.01
    )
    with pytest.raises(RetryExhaustedError):
        emb.embed(["x", "y"])
    assert fake.stats.requests == 3
    assert emb.gate.window < START


def test_the_emulator_holds_a_quota_in_a_short_window() -> None:
    """rate_limit_window=2 at 60 requests/min: 2 requests per 2 s, the third answered 429
    naming the time until a slot frees (at most the window)."""
    fake = FakeTransport(rate_limit_rpm=60, rate_limit_window=2.0)
    emb = Embedder(transport=fake, dimensions=128, batch_size=1, max_retries=0)
    assert len(emb.embed(["a", "b"])) == 2
    with pytest.raises(RetryExhaustedError) as err:
        emb.embed(["c"])
    delay = err.value.last.retry_after
    assert delay is not None and 0 < delay <= 2.0
    assert fake.stats.faults["rate_limit"] == 1


class Clock:
    """The gate's clock, moved by hand: the window's rule without the machine's speed."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(concurrency.time, "monotonic", c)
    return c


def test_the_window_doubles_each_round_until_the_first_overload(clock: Clock) -> None:
    gate = Gate(16)
    tickets = [gate.try_acquire() for _ in range(4)]
    assert all(isinstance(t, Ticket) for t in tickets) and gate.try_acquire() is None
    clock.now += 0.25
    for t in tickets:
        assert isinstance(t, Ticket)
        gate.release(t, "clean")
    assert gate.window == 2 * START


def test_an_overload_sets_the_window_to_the_accepted_rate_even_the_calls_in_flight(
    clock: Clock,
) -> None:
    """Calls 0.25 s long start every 0.05 s (20 a second) for 2 s, then one is refused:
    the window becomes SAFE x 20/s x 0.25 s, counting the 5 calls still in flight (the
    answered ones alone would say 17.5/s); one later refusal of that round changes
    nothing; 100 clean answers then raise it about 5%, not back to where it was."""
    gate = Gate(16)
    flying: list[Ticket] = []
    started = 0
    for _ in range(40):
        for t in [t for t in flying if clock.now - t.started >= 0.25 - 1e-9]:
            flying.remove(t)
            gate.release(t, "clean")
        got = gate.try_acquire()
        if isinstance(got, float):  # paced a hair later than this step
            clock.now += got
            got = gate.try_acquire()
        if isinstance(got, Ticket):  # (None: the first window of 4 is full)
            flying.append(got)
            started += 1
        clock.now += 0.05
    assert len(flying) == 5 and gate.window > 8
    refused = gate.try_acquire()
    assert isinstance(refused, Ticket)
    gate.release(refused, "overload")
    expected = SAFE * started / 2.0 * 0.25
    assert gate.window == pytest.approx(expected, rel=0.02)
    gate.release(flying.pop(), "overload")  # sent before the decrease: the same round
    assert gate.window == pytest.approx(expected, rel=0.02) and gate.decreases == 1
    after = gate.window
    for _ in range(100):
        clock.now += 0.25
        t = gate.try_acquire()
        if isinstance(t, float):
            clock.now += t
            t = gate.try_acquire()
        assert isinstance(t, Ticket)
        clock.now += 0.25
        gate.release(t, "clean")
    assert 1.03 * after < gate.window < 1.07 * after
