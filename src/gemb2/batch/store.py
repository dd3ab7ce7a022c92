"""The SQLite job store: every submitted job and the key, payload and cache key of each item.

It is what lets one process submit and another collect, so it knows the schema and
how a ``JobRecord`` is written and read back, and nothing of the service.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemb2.batch.records import JobRecord
from gemb2.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    job TEXT NOT NULL, pos INTEGER NOT NULL, key TEXT NOT NULL, payload TEXT,
    cache_key TEXT, fallback TEXT, PRIMARY KEY (job, pos)
);
CREATE INDEX IF NOT EXISTS items_key ON items (key);
"""


@dataclass(frozen=True)
class StoredItem:
    pos: int
    key: str
    payload: Any
    cache_key: str | None
    fallback: dict[str, Any] | None


class JobStore:
    """Submitted jobs and their items' keys and payloads, in SQLite, shared across processes."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def add(self, job: JobRecord, items: Iterable[StoredItem]) -> None:
        rows = [
            (
                job.name,
                it.pos,
                it.key,
                json.dumps(it.payload),
                it.cache_key,
                json.dumps(it.fallback) if it.fallback is not None else None,
            )
            for it in items
        ]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?)",
                    (job.name, _dump_record(job), job.created),
                )
                self._db.execute("DELETE FROM items WHERE job = ?", (job.name,))
                self._db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def update(self, job: JobRecord) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET record = ? WHERE name = ?", (_dump_record(job), job.name)
            )

    def get(self, name: str) -> JobRecord:
        """A job by name; ``batches/`` may be left off."""
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM jobs WHERE name = ? OR name = ?",
                (name, f"batches/{name}"),
            ).fetchone()
        if row is None:
            raise InputError(
                f"no batch job {name!r} in {self.path}; `gemb2 jobs` lists the known jobs"
            )
        return _load_record(row[0])

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM jobs ORDER BY created").fetchall()
        return [_load_record(r[0]) for r in rows]

    def items(self, name: str) -> list[StoredItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT pos, key, payload, cache_key, fallback FROM items WHERE job = ? "
                "ORDER BY pos",
                (name,),
            ).fetchall()
        return [
            StoredItem(
                pos,
                key,
                json.loads(payload) if payload else None,
                cache_key,
                json.loads(fb) if fb else None,
            )
            for pos, key, payload, cache_key, fb in rows
        ]

    def pending_keys(
        self, keys: Iterable[str], *, context: Mapping[str, Any] | None = None
    ) -> set[str]:
        """Keys already waiting in a job not yet collected (whose context matches, if given)."""
        wanted = list(dict.fromkeys(keys))
        ended = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
        pending = {
            j.name
            for j in self.jobs()
            if j.collected is None
            and j.state not in ended
            and all(j.context.get(k) == v for k, v in (context or {}).items())
        }
        if not pending or not wanted:
            return set()
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, job FROM items WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                found.update(k for k, j in rows if j in pending)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"JobStore({self.path!r})"


def _dump_record(job: JobRecord) -> str:
    return json.dumps(job.__dict__)


def _load_record(text: str) -> JobRecord:
    data = json.loads(text)
    known = JobRecord.__dataclass_fields__
    return JobRecord(**{k: v for k, v in data.items() if k in known})
