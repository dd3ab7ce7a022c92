"""One quota, many processes: Embedders in separate processes that name one limiter (a
SQLite file, or a real Redis server) pace against one budget, measured where the calls
land (the emulator's arrival times).

Three worker processes each send their calls one item at a time, two in flight. Shared,
every call books its turn in the one store: after a burst of two, one call every
``60 / (rpm - 2 + 1)`` s across all four, so the k-th call to arrive comes no sooner than
``(k - 1)`` such intervals after the start. Each alone, they go three times as fast. Only
lower bounds are asserted: a loaded machine can make calls later, never earlier.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gemb2 import Embedder, EmbedSettings
from gemb2.engine.limiter_backends import limiter_for
from gemb2.testing.emulator import Emulator

WORKER = Path(__file__).with_name("limiter_worker.py")
RPM = 300.0  # one call every 0.2 s across all workers
CONCURRENCY = 2  # per worker, and the burst
SPACING = 60.0 / (RPM - CONCURRENCY + 1)
WORKERS, CALLS = 3, 12
SLACK = 0.02  # seconds: clock granularity, a sleep's early wake-up
PAUSE = 5.0  # seconds a reported 429 pauses every sharer


def run_workers(
    emulator: Emulator, limiter: str, tmp: Path, **job: Any
) -> tuple[float, list[dict[str, Any]]]:
    """Start the workers, let them build their clients, then start them together; the
    start time (this process's monotonic clock, as the emulator's arrivals) and what
    each one printed."""
    go = tmp / "go"
    procs, ready = [], []
    for w in range(WORKERS):
        ready.append(tmp / f"ready-{w}")
        spec = {
            "base_url": emulator.base_url,
            "limiter": limiter,
            "rpm": RPM,
            "concurrency": CONCURRENCY,
            "n": CALLS,
            "tag": f"worker {w}",
            "ready": str(ready[-1]),
            "go": str(go),
            **job,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 240
    while not all(r.exists() for r in ready):
        failed = [p for p in procs if p.poll() is not None]
        assert not failed, failed[0].communicate()[1][-2000:]
        assert time.monotonic() < deadline, "workers did not get ready"
        time.sleep(0.02)
    emulator.reset_stats()
    start = time.monotonic()
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return start, results


def late_by(start: float, emulator: Emulator) -> list[float]:
    """How much earlier than its shared turn each call arrived (> 0: too early)."""
    arrivals = sorted(t - start for t in emulator.stats.arrivals)
    assert len(arrivals) == WORKERS * CALLS
    turns = [max(0, k - CONCURRENCY + 1) * SPACING for k in range(len(arrivals))]
    return [turn - at for at, turn in zip(arrivals, turns, strict=True)]


def check_shared(start: float, results: list[dict[str, Any]], emulator: Emulator) -> None:
    assert [r["vectors"] for r in results] == [CALLS] * WORKERS
    assert sum(r["requests"] for r in results) == emulator.stats.requests == WORKERS * CALLS
    assert not emulator.stats.faults  # nothing refused
    early = late_by(start, emulator)
    assert max(early) <= SLACK, [round(e, 3) for e in early]


def test_sqlite_limiter_paces_three_processes_as_one(emulator: Emulator, tmp_path: Path) -> None:
    start, results = run_workers(emulator, f"sqlite:///{tmp_path / 'quota.sqlite'}", tmp_path)
    check_shared(start, results, emulator)
    # the last call waited for every one before it, whichever process sent them
    assert max(emulator.stats.arrivals) - start >= (WORKERS * CALLS - 2) * SPACING - SLACK


def test_redis_limiter_paces_three_processes_as_one(
    emulator: Emulator, redis_url: str, tmp_path: Path
) -> None:
    start, results = run_workers(emulator, redis_url, tmp_path)
    check_shared(start, results, emulator)


def test_local_limiters_overrun_the_shared_quota(emulator: Emulator, tmp_path: Path) -> None:
    """The same run with each process pacing alone (``limiter="local"``) sends calls
    sooner than the shared turns allow: the bound above has teeth."""
    start, results = run_workers(emulator, "local", tmp_path)
    assert [r["vectors"] for r in results] == [CALLS] * WORKERS
    early = late_by(start, emulator)
    assert max(early) > 1.0, [round(e, 3) for e in early]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_429_seen_by_one_process_pauses_the_others(
    backend: str, emulator: Emulator, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One process reports a 429 (``throttled(5.0)``) and exits; an Embedder in this
    process naming the same limiter sends nothing until that pause is over (the worker
    says, by the wall clock, when it ends)."""
    url = (
        f"sqlite:///{tmp_path / 'quota.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    emb = Embedder(base_url=emulator.base_url, dimensions=128, limiter=url)
    emb.embed(["before the pause"])  # client built, store open
    job = {"base_url": emulator.base_url, "limiter": url, "throttle": PAUSE}
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(job)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    until = json.loads(done.stdout.strip().splitlines()[-1])["until"]
    emulator.reset_stats()
    wall, mono = time.time(), time.monotonic()
    emb.embed(["after the pause"])
    (arrival,) = emulator.stats.arrivals
    assert wall + (arrival - mono) >= until - SLACK, (until - wall, arrival - mono)
    # another quota (another key) is not paused
    other = Embedder(base_url=emulator.base_url, dimensions=128, limiter=url, api_key="other-key")
    t0 = time.monotonic()
    other.embed(["another project's quota"])
    assert time.monotonic() - t0 < PAUSE


def test_two_embedders_share_tokens_through_the_file(emulator: Emulator, tmp_path: Path) -> None:
    """Tokens per minute are shared too: two Embedders, each with a limiter of its own on
    one file, spend one budget. A call goes once its tokens, with all those booked before
    it, fit in the minute: 60 s x tokens so far / tpm - 60 after the first booking. The
    budget is set so that the third of three large texts waits 3 s; each Embedder alone
    (two texts at most) would wait for nothing."""
    url = f"sqlite:///{tmp_path / 'quota.sqlite'}"
    texts = [" ".join(f"word{i}-{k}" for i in range(300)) for k in range(3)]
    probe = Embedder(base_url=emulator.base_url, dimensions=128)
    tokens = [p.tokens["text"] for p in probe.prepare(texts)]
    tpm = 60 * sum(tokens) / 63
    a, b = (
        Embedder(base_url=emulator.base_url, dimensions=128, tokens_per_minute=tpm, limiter=url)
        for _ in range(2)
    )
    start = time.monotonic()
    a.embed([texts[0]])
    b.embed([texts[1]])
    a.embed([texts[2]])
    arrivals = sorted(t - start for t in emulator.stats.arrivals)
    due = [max(0.0, 60 * sum(tokens[: k + 1]) / tpm - 60) for k in range(3)]
    assert due == [0.0, 0.0, pytest.approx(3.0)]
    for k, at in enumerate(arrivals):
        assert at >= due[k] - SLACK, (k, arrivals, due)


def test_limiter_for_names_the_store(tmp_path: Path) -> None:
    """``local`` (or nothing) is the in-process limiter; a URL is shared; sharers of one
    quota meet on one name, others do not."""
    from gemb2.engine.ratelimit import RateLimiter
    from gemb2.engine.shared_limiter import SharedLimiter

    assert type(limiter_for(EmbedSettings(requests_per_minute=60))) is RateLimiter
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    one = limiter_for(EmbedSettings(requests_per_minute=60, limiter=url, api_key="key-one"))
    same = limiter_for(EmbedSettings(limiter=url, api_key="key-one"))
    other = limiter_for(EmbedSettings(limiter=url, api_key="key-two"))
    named = limiter_for(EmbedSettings(limiter=url + "?quota=team", api_key="key-two"))
    assert isinstance(one, SharedLimiter) and isinstance(other, SharedLimiter)
    assert isinstance(same, SharedLimiter) and isinstance(named, SharedLimiter)
    assert one.name == same.name != other.name
    assert named.name == "team"
    assert "key-one" not in one.name and (tmp_path / "q.sqlite").is_file()


@pytest.mark.parametrize("where", ["local", "sqlite"])
def test_throttled_makes_the_next_booking_wait(where: str, tmp_path: Path) -> None:
    """The protocol both kinds of limiter keep: after ``throttled(s)`` the next
    ``reserve`` returns about ``s`` (a later, shorter pause never shortens it), and
    ``throttled(None)`` pauses ``DEFAULT_THROTTLE``."""
    from gemb2.engine.ratelimit import DEFAULT_THROTTLE

    url = "local" if where == "local" else f"sqlite:///{tmp_path / 'q.sqlite'}"
    limiter = limiter_for(EmbedSettings(limiter=url))
    assert limiter.reserve() == 0.0
    limiter.throttled(3.0)
    limiter.throttled(0.5)
    assert 2.5 < limiter.reserve() <= 3.0
    fresh = limiter_for(EmbedSettings(limiter=url, api_key="another-key"))
    fresh.throttled(None)
    assert 0.5 * DEFAULT_THROTTLE < fresh.reserve() <= DEFAULT_THROTTLE
