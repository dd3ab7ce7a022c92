"""The Chroma side of the ``gemb2`` commands: which client a command's flags name, and
the collection opened with gemb2's embedding function. Shared by ``cli`` and
``batch_cli`` (which must not import each other)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from gemb2.errors import ConfigError

if TYPE_CHECKING:
    from gemb2.stores.limits import ChromaWriteLimits


def _client(args: argparse.Namespace) -> Any:
    import chromadb

    if args.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(args.chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or 8000,
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
        except Exception as exc:
            raise ConfigError(
                f"cannot reach the Chroma server at {args.chroma_url}: {exc}"
            ) from exc
    return chromadb.PersistentClient(path=str(args.db), settings=_chroma_settings())


def _chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def _stored_settings(client: Any, name: str) -> dict[str, Any]:
    """Model and dimension a collection was built with, so search uses the same."""
    try:
        meta = client.get_collection(name).metadata or {}
    except Exception:
        return {}
    return {k: meta[f"gemb2:{k}"] for k in ("model", "dimensions") if f"gemb2:{k}" in meta}


def _collection(
    client: Any,
    name: str,
    session: Any,
    metadata: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

    ef = GeminiEmbeddingFunction(**session.settings(**settings))
    return open_collection(client, name, ef, metadata=metadata), ef


def add_write_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Overrides of the Chroma write limits, on the commands that write records."""
    g = parser.add_argument_group(
        "Chroma write limits (default with --chroma-url: Chroma Cloud's quotas, 300 records "
        "per write, 16384-byte documents, 10 writes in flight; embedded: none)"
    )
    g.add_argument(
        "--chroma-max-batch", type=int, metavar="N", help="records per write (0: no limit)"
    )
    g.add_argument(
        "--chroma-max-read", type=int, metavar="N", help="records per read (0: no limit)"
    )
    g.add_argument(
        "--chroma-max-document-bytes",
        type=int,
        metavar="N",
        help="longer piece documents are stored cut (0: no limit)",
    )
    g.add_argument(
        "--chroma-max-writes", type=int, metavar="N", help="writes in flight per collection"
    )


def write_limits(args: argparse.Namespace) -> ChromaWriteLimits:
    """The limits for the command's target (a server or embedded), with its overrides."""
    from gemb2.stores.limits import ChromaWriteLimits

    overrides: dict[str, Any] = {}
    for flag, field, least in (
        ("chroma_max_batch", "max_records_per_write", 0),
        ("chroma_max_read", "max_results_per_read", 0),
        ("chroma_max_document_bytes", "max_document_bytes", 0),
        ("chroma_max_writes", "max_concurrent_writes", 1),
    ):
        value = getattr(args, flag, None)
        if value is None:
            continue
        if value < least:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least {least}, got {value}")
        overrides[field] = value or None  # 0: no limit
    if getattr(args, "chroma_url", None):
        return ChromaWriteLimits.cloud(**overrides)
    return ChromaWriteLimits.embedded(**overrides)
