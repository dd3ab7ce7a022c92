"""Load: 500 concurrent ``embed_query`` calls from threads, and 500 from asyncio tasks, on one
Embedder all complete with the right vectors while the connections open to the service stay
bounded by ``max_concurrency`` (counted from the kernel's socket table, /proc/net/tcp)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rel_helpers import DIMS

from gemb2 import Embedder
from gemb2.testing.emulator import Emulator

CALLS = 500
MAX_CONCURRENCY = 4
SLACK = 2  # a connection closing while its replacement opens
ESTABLISHED = "01"


def _own_socket_inodes() -> set[str]:
    """Inodes of the sockets this process holds (its fds that link to ``socket:[N]``)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed while listing
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def connections_to(port: int) -> set[tuple[str, str]]:
    """This process's client-side TCP connections in ESTABLISHED state to 127.0.0.1:port,
    as (local address, inode). Other processes' sockets (a Chroma server, Ray, Redis
    started by other tests) whose far end happens to carry the same port are not ours."""
    own = _own_socket_inodes()
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == ESTABLISHED and int(remote.split(":")[1], 16) == port and inode in own:
            found.add((local, inode))
    return found


class ConnectionSampler:
    """Samples the open connections to a port on a background thread; keeps the most seen
    at once, leaving out any open before it started (not the Embedder under test's)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.peak = 0
        self.peak_seen: set[tuple[str, str]] = set()
        self.samples = 0
        self._before: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = connections_to(self.port) - self._before
            if len(now) > self.peak:
                self.peak, self.peak_seen = len(now), now
            self.samples += 1
            time.sleep(0.002)

    def __enter__(self) -> ConnectionSampler:
        self._before = connections_to(self.port)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def own_emulator() -> Iterator[Emulator]:
    """An emulator of its own, so no other client's keep-alive connections are counted;
    a little latency per request makes the calls really overlap."""
    with Emulator(port=0) as emu:
        emu.configure(latency_per_request=0.01)
        yield emu


def _queries() -> list[str]:
    return [f"query number {i} about topic {i % 13}" for i in range(CALLS)]


def _reference(emu: Emulator, queries: list[str]) -> np.ndarray:
    with Embedder(base_url=emu.base_url, dimensions=DIMS) as embedder:
        return np.asarray(embedder.embed(queries, role="query"))


def test_500_threads_calling_embed_query_share_a_bounded_pool(own_emulator: Emulator) -> None:
    emu = own_emulator
    queries = _queries()
    want = _reference(emu, queries)
    emu.reset_stats()
    embedder = Embedder(base_url=emu.base_url, dimensions=DIMS, max_concurrency=MAX_CONCURRENCY)
    results: list[list[float] | None] = [None] * CALLS
    errors: list[BaseException] = []
    start = threading.Barrier(CALLS)

    def call(i: int) -> None:
        try:
            start.wait()
            results[i] = embedder.embed_query(queries[i])
        except BaseException as exc:  # collected and re-checked below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLS)]
    with ConnectionSampler(emu.port) as sampler:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[:3]
    assert all(r is not None for r in results)
    assert np.max(np.abs(np.asarray(results) - want)) < 1e-9
    assert emu.stats.requests == CALLS and embedder.usage.requests == CALLS
    assert sampler.samples > 10
    assert 1 <= sampler.peak <= MAX_CONCURRENCY + SLACK, (sampler.peak, sampler.peak_seen)
    embedder.close()


async def test_500_asyncio_tasks_calling_aembed_query_share_a_bounded_pool(
    own_emulator: Emulator,
) -> None:
    emu = own_emulator
    queries = _queries()
    want = await asyncio.to_thread(_reference, emu, queries)
    emu.reset_stats()
    embedder = Embedder(base_url=emu.base_url, dimensions=DIMS, max_concurrency=MAX_CONCURRENCY)
    with ConnectionSampler(emu.port) as sampler:
        got = await asyncio.gather(*(embedder.aembed_query(q) for q in queries))
    await embedder.aclose()
    assert np.max(np.abs(np.asarray(got) - want)) < 1e-9
    assert emu.stats.requests == CALLS and embedder.usage.requests == CALLS
    assert sampler.samples > 10
    assert 1 <= sampler.peak <= MAX_CONCURRENCY + SLACK, (sampler.peak, sampler.peak_seen)
