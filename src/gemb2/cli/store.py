"""The Chroma side of the ``gemb2`` commands: which client a command's flags name, and
the collection opened with gemb2's embedding function. Shared by ``cli`` and
``batch_cli`` (which must not import each other)."""

from __future__ import annotations

import argparse
from typing import Any

from gemb2.errors import ConfigError


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
