"""The rate limiter whose bookings and pauses live in a SQLite file or in Redis, so every
process (or machine) that names the same quota paces against one budget.

Built on pyrate-limiter (>= 4.5): its GCRA policy (a theoretical arrival time per rate,
the wait in closed form, a burst) decides every booking, and its ``RedisStateStore``
applies it atomically in one Lua script. Its SQLite bucket is a sliding-window log (a row
per unit of weight: a call of 8,000 tokens would write 8,000 rows) and is atomic across
processes only with an extra file lock, so for SQLite the same GCRA state is kept through
the library's ``StateStore`` extension point: one row, read and written in one
``BEGIN IMMEDIATE`` transaction. ``limits`` was the alternative: it has Redis but no
SQLite storage, and its ``hit`` answers yes or no, not how long to wait.

The engine books a turn and waits it out (``reserve(tokens) -> seconds``, which never
sleeps, so the thread and asyncio drivers both work): pyrate's check admits an arrival at
a given time or names the wait, and checking again at the time it names books that turn
(the state is a time, so every later arrival queues behind it); a sharer that booked in
between only moves the turn later. Tokens are booked first, then the request at that
turn. A booking is a round trip to the store (about 0.3 ms for the file, measured on a
loaded 2-core machine) made on the caller's thread or event loop. A 429 seen by one
sharer (``throttled``) stores a pause that every sharer's next booking starts after: a
row in the file, a key expiring with the pause in Redis.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from os import getpid
from pathlib import Path
from typing import Any

from pyrate_limiter import GCRA, Decision, Rate, RedisStateStore, StateStore

from gemb2 import redaction
from gemb2.engine.ratelimit import DEFAULT_THROTTLE, RateLimiter
from gemb2.errors import ConfigError

# a booking that keeps losing its turn to other sharers stops trying after this many
# (each lost try means another sharer booked: the quota is moving, not stuck)
_MAX_TRIES = 1000
# shared state outlives any wait a run sits through; idle keys then go
_STATE_TTL_S = 3600.0


class SharedLimiter(RateLimiter):
    """``RateLimiter``'s bookings and pauses, kept in a shared ``Store``.

    Requests: a burst of ``burst``, then one per ``60 / (rpm - burst + 1)`` s, so no 60 s
    window holds more than rpm, whoever sends; tokens: up to a minute's worth in
    advance, then paced, as in process. Time is the wall clock (shared across machines:
    keep their clocks in sync, as NTP does)."""

    def __init__(
        self,
        store: Store,
        name: str,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        burst: int = 1,
    ) -> None:
        super().__init__(requests_per_minute, tokens_per_minute, burst=burst)
        self.store, self.name = store, name
        self._gcra = GCRA()
        # GCRA spaces arrivals by interval / limit: a limit of 1000 makes the interval
        # (in ms) the spacing in µs, kept exact to 0.1% by the units below
        self._req: list[Rate] | None = None
        if self.rpm:
            spacing_us = 60e6 / (self.rpm - self.burst + 1)
            self._req = [Rate(1000, max(1, round(spacing_us)), self.burst)]
        self._tok: list[Rate] | None = None
        self._unit = 1  # tokens per unit of weight: at least 1 ms of the minute each
        if self.tpm:
            self._unit = max(1, math.ceil(self.tpm / 60_000))
            minute = max(1, int(self.tpm // self._unit))
            self._tok = [Rate(1000, max(1, round(60e6 * self._unit / self.tpm)), minute)]

    @property
    def active(self) -> bool:
        return True  # a pause is shared even with no rate to pace

    def throttled(self, seconds: float | None) -> None:
        """A 429 was seen: every sharer pauses that long (or ``DEFAULT_THROTTLE``)."""
        pause = DEFAULT_THROTTLE if seconds is None else max(0.0, seconds)
        self.store.pause(self.name, time.time() + pause)

    def reserve(self, tokens: int = 0) -> float:
        now = time.time()
        at = max(now, self.store.paused_until(self.name))
        if self._tok is not None and tokens:
            weight = min(self._tok[0].burst, math.ceil(tokens / self._unit))
            at = self._book("tokens", self._tok, weight, at)
        if self._req is not None:
            at = self._book("requests", self._req, 1, at)
        return max(0.0, at - now)

    def _book(self, what: str, rates: list[Rate], weight: int, at: float) -> float:
        """Book ``weight`` at the first turn from ``at`` on (wall-clock seconds)."""
        ts = math.ceil(at * 1000)
        key = f"{self.name}:{what}"
        for _ in range(_MAX_TRIES):
            decision = self.store.check(key, self._gcra, rates, ts, weight)
            if decision.allowed:
                break
            ts += max(1, decision.retry_after_ms or 1)
        return ts / 1000


class Store:
    """Where the GCRA states and pauses of every quota in one URL live."""

    def __init__(self, url: str) -> None:
        self.url = url

    def check(self, key: str, algorithm: GCRA, rates: list[Rate], ts: int, weight: int) -> Decision:
        """Apply ``algorithm`` to ``key``'s state at ``ts`` (ms), atomically."""
        raise NotImplementedError

    def pause(self, name: str, until: float) -> None:
        """No booking of ``name`` starts before ``until`` (a later pause only extends it)."""
        raise NotImplementedError

    def paused_until(self, name: str) -> float:
        raise NotImplementedError

    def failed(self, exc: BaseException) -> ConfigError:
        """The package's one-line error for a store that stopped working mid-run."""
        reason = redaction.redact_text(str(exc))
        shown = redaction.redact_url(self.url)
        return ConfigError(f"the shared rate limiter at {shown} failed: {reason}")


class SQLiteStore(Store):
    """A SQLite file: GCRA states in ``gcra``, pauses in ``pause``; WAL, one connection per
    process, short ``BEGIN IMMEDIATE`` transactions (writers take turns on the file)."""

    def __init__(self, url: str, path: str) -> None:
        super().__init__(url)
        self._lock = threading.RLock()  # one connection, shared by this process's threads
        file = Path(path).expanduser()
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                file, timeout=30, isolation_level=None, check_same_thread=False
            )
            for statement in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "CREATE TABLE IF NOT EXISTS gcra "
                "(key TEXT PRIMARY KEY, state TEXT NOT NULL, expires REAL NOT NULL)",
                "CREATE TABLE IF NOT EXISTS pause (key TEXT PRIMARY KEY, until REAL NOT NULL)",
            ):
                self.conn.execute(statement)
            now = time.time()  # what expired since the file was last used
            self.conn.execute("DELETE FROM gcra WHERE expires < ?", (now,))
            self.conn.execute("DELETE FROM pause WHERE until < ?", (now,))
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"limiter {url!r}: cannot use {file}: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on an error): a read, decide and
        write that no other process interleaves."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.failed(exc) from exc
            try:
                yield self.conn
            except BaseException as exc:
                self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.failed(exc) from exc
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self.failed(exc) from exc

    def check(self, key: str, algorithm: GCRA, rates: list[Rate], ts: int, weight: int) -> Decision:
        with self.transaction():
            return SQLiteStateStore(self.conn, key).check(algorithm, rates, ts, weight)

    def pause(self, name: str, until: float) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO pause (key, until) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                "SET until = max(until, excluded.until)",
                (name, until),
            )

    def paused_until(self, name: str) -> float:
        with self._lock:
            try:
                found = self.conn.execute(
                    "SELECT until FROM pause WHERE key = ?", (name,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise self.failed(exc) from exc
        return float(found[0]) if found else 0.0


class SQLiteStateStore(StateStore):
    """pyrate-limiter's ``StateStore`` as one row of the ``gcra`` table; its caller holds
    the transaction that makes ``check`` atomic (``SQLiteStore.check``)."""

    is_async = False

    def __init__(self, conn: sqlite3.Connection, key: str) -> None:
        self.conn, self.key = conn, key

    def check(self, algorithm: Any, rates: list[Rate], now: int, weight: int) -> Decision:
        new, decision = algorithm.step(rates, self.read(algorithm, rates), now, weight)
        if decision.allowed:
            self.conn.execute(
                "INSERT INTO gcra (key, state, expires) VALUES (?, ?, ?) ON CONFLICT(key) "
                "DO UPDATE SET state = excluded.state, expires = excluded.expires",
                (self.key, ",".join(f"{v:.0f}" for v in new), time.time() + _STATE_TTL_S),
            )
        return decision

    def read(self, algorithm: Any, rates: list[Rate]) -> Any:
        row = self.conn.execute(
            "SELECT state FROM gcra WHERE key = ? AND expires >= ?", (self.key, time.time())
        ).fetchone()
        values = row[0].split(",") if row else []
        # another rate list (a sharer with other settings): start from the initial state
        return algorithm.decode(values) if len(values) == len(rates) else algorithm.initial(rates)

    def reset(self) -> None:
        self.conn.execute("DELETE FROM gcra WHERE key = ?", (self.key,))


class RedisStore(Store):
    """Redis: pyrate-limiter's ``RedisStateStore`` (GCRA in Lua) per key, and a pause key
    that only ever moves later and expires with the pause."""

    _PAUSE_LUA = """
    local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
    if tonumber(ARGV[1]) > cur then
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    end
    return 1
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        shown = redaction.redact_url(url)
        try:
            import redis
        except ImportError:
            raise ConfigError(
                f"limiter {shown!r} needs the Redis client: pip install 'gemb2[redis]'"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        plain = url.split("?", 1)[0]  # ?quota= is gemb2's, not redis-py's
        try:
            self.client = redis.Redis.from_url(
                plain, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
            )
            self.client.ping()
        except self._errors as exc:
            reason = redaction.redact_text(str(exc))
            raise ConfigError(f"limiter {shown!r}: cannot reach Redis: {reason}") from None
        self._pause = self.client.register_script(self._PAUSE_LUA)
        self._states: dict[str, RedisStateStore] = {}

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise self.failed(exc) from None

    def check(self, key: str, algorithm: GCRA, rates: list[Rate], ts: int, weight: int) -> Decision:
        state = self._states.get(key)
        if state is None:
            ttl = int(_STATE_TTL_S * 1000)
            state = self._states[key] = RedisStateStore(self.client, f"gemb2:{key}", ttl_ms=ttl)
        with self._guard():
            return state.check(algorithm, rates, ts, weight)

    def pause(self, name: str, until: float) -> None:
        ms = max(1, math.ceil((until - time.time()) * 1000))
        with self._guard():
            self._pause(keys=[f"gemb2:{name}:pause"], args=[f"{until:.6f}", ms])

    def paused_until(self, name: str) -> float:
        with self._guard():
            value = self.client.get(f"gemb2:{name}:pause")
        return float(value) if value else 0.0


_stores: dict[tuple[str, int], Store] = {}
_stores_lock = threading.Lock()


def store_for(url: str, sqlite_path: str = "") -> Store:
    """One store (one connection) per URL and process, shared by its Embedders; a forked
    child opens its own."""
    key = (url.split("?", 1)[0], getpid())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = SQLiteStore(url, sqlite_path) if sqlite_path else RedisStore(url)
            _stores[key] = store
        return store
