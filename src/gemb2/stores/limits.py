"""How big and how many Chroma writes may be: one settings object for every write path.

A Chroma server in the cloud refuses what is over its quotas, and a refused write in the
middle of an index run costs a failed job. Chroma Cloud's published quotas (page
"Quotas & Limits", https://docs.trychroma.com/cloud/quotas-limits, read 2026) are the
defaults whenever the target is a server (``chromadb.HttpClient``, ``CloudClient``,
``gemb2 ... --chroma-url``):

=========================================  =========
Maximum number of records per write        300
Maximum document bytes                     16,384
Maximum URI bytes                          256
Maximum number of concurrent writes        10 per collection
Maximum number of results returned         300 (per ``get``: reads page, see ``reads``)
=========================================  =========

(The same page also lists 128 bytes per id, 4,096 bytes per metadata value, 36 bytes
per metadata key and 32 keys per record: gemb2's own records are well inside those.)
An embedded store (``PersistentClient``, ``EphemeralClient``) keeps what it always had:
no document or URI limit, one write at a time, and at most Chroma's own
``client.get_max_batch_size()`` records per write (which the writer also honours on a
server that reports a smaller one).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CHROMA_CLOUD_LIMITS_URL = "https://docs.trychroma.com/cloud/quotas-limits"
CLOUD_MAX_RECORDS_PER_WRITE = 300
CLOUD_MAX_DOCUMENT_BYTES = 16_384
CLOUD_MAX_URI_BYTES = 256
CLOUD_MAX_CONCURRENT_WRITES = 10
CLOUD_MAX_RESULTS_PER_READ = 300


class ChromaWriteLimits(BaseModel):
    """Bounds on each write to one Chroma collection (and on the records one read asks
    for, ``max_results_per_read``). ``None`` means no bound of ours
    (Chroma's own ``max_batch_size`` still caps the records per write). The defaults are
    Chroma Cloud's; ``embedded()`` and ``for_collection()`` give the others."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_records_per_write: int | None = Field(
        default=CLOUD_MAX_RECORDS_PER_WRITE,
        ge=1,
        description="records in one add/upsert/delete call; a record is never split",
    )
    max_document_bytes: int | None = Field(
        default=CLOUD_MAX_DOCUMENT_BYTES,
        ge=1,
        description="UTF-8 bytes of a stored document; a longer piece's document is cut "
        "(its full text is rebuilt from its source and offsets)",
    )
    max_uri_bytes: int | None = Field(
        default=CLOUD_MAX_URI_BYTES,
        ge=1,
        description="UTF-8 bytes of a stored uri; a longer one equal to the record's "
        "`source` is left out (the source stays in the metadata), any other is refused",
    )
    max_concurrent_writes: int = Field(
        default=CLOUD_MAX_CONCURRENT_WRITES,
        ge=1,
        description="writes in flight at once to one collection from this process",
    )
    max_results_per_read: int | None = Field(
        default=CLOUD_MAX_RESULTS_PER_READ,
        ge=1,
        description="records one get asks for; a longer read (all of a collection, many "
        "ids) is sent as pages of at most this many",
    )

    @classmethod
    def cloud(cls, **overrides: Any) -> ChromaWriteLimits:
        """Chroma Cloud's published quotas (the defaults for any server)."""
        return cls(**overrides)

    @classmethod
    def embedded(cls, **overrides: Any) -> ChromaWriteLimits:
        """An embedded store: nothing of ours, one write at a time (as before)."""
        base: dict[str, Any] = {
            "max_records_per_write": None,
            "max_document_bytes": None,
            "max_uri_bytes": None,
            "max_concurrent_writes": 1,
            "max_results_per_read": None,
        }
        return cls(**{**base, **overrides})

    @classmethod
    def for_collection(cls, collection: Any, **overrides: Any) -> ChromaWriteLimits:
        """Cloud limits when ``collection`` lives on a server, else embedded ones. A
        wrapper around a collection is looked through by its ``collection`` attribute."""
        if is_server(collection):
            return cls.cloud(**overrides)
        return cls.embedded(**overrides)


def chroma_collection(target: Any) -> Any:
    """The Chroma collection behind ``target``: itself, or what its ``collection``
    attribute holds (a Matryoshka view, a test's wrapper), a few levels deep."""
    for _ in range(5):
        if hasattr(target, "_client"):
            return target
        inner = getattr(target, "collection", None)
        if inner is None:
            return target
        target = inner
    return target


def is_server(collection: Any) -> bool:
    """Whether the collection is reached over HTTP (Chroma's ``FastAPI`` client class,
    used by ``HttpClient`` and ``CloudClient``)."""
    client = getattr(chroma_collection(collection), "_client", None)
    if client is None:
        return False
    try:
        from chromadb.api.fastapi import FastAPI
    except ImportError:  # pragma: no cover - every chromadb we support has it
        return False
    return isinstance(client, FastAPI)


def client_max_batch(collection: Any) -> int | None:
    """Chroma's own cap on records per write for this collection's client, if it tells
    (the server's pre-flight answer, cached by chromadb; the embedded SQLite bound)."""
    client = getattr(chroma_collection(collection), "_client", None)
    getter = getattr(client, "get_max_batch_size", None)
    if getter is None:
        return None
    try:
        size = int(getter())
    except Exception:  # a server that is down says so at the write itself
        return None
    return size if size > 0 else None
