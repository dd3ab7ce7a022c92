"""ChromaDB embedding function for Gemini Embedding 2, registered so a collection
reopened in a new process gets it back from its persisted configuration.

The persisted configuration holds the model, dimension, task and the NAME of the
environment variable with the key, never the key itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from chromadb.api.types import (
    DataLoader,
    Embeddable,
    EmbeddingFunction,
    Embeddings,
    Space,
    URIs,
    normalize_embeddings,
)
from chromadb.utils.embedding_functions import register_embedding_function
from pydantic import SecretStr

from .embedder import Embedder
from .errors import InputError, ModelMismatchError
from .media import Item, ItemLike, Media
from .settings import EmbedSettings

NAME = "gemb2_gemini_embedding_2"
_PERSISTED = (
    "model",
    "dimensions",
    "task",
    "api_key_env_var",
    "vertexai",
    "project",
    "location",
    "base_url",
)


@register_embedding_function
class GeminiEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Embeds Chroma ``Documents`` (text), ``Images`` (pixel arrays) and media loaded
    from ``uris`` by ``GeminiMediaLoader``, all into one vector space."""

    def __init__(
        self,
        model: str = "gemini-embedding-2",
        dimensions: int | None = None,
        task: str = "retrieval",
        api_key_env_var: str | None = None,
        vertexai: bool = False,
        project: str | None = None,
        location: str | None = None,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        **settings: Any,
    ) -> None:
        missing = api_key_env_var is not None and not os.environ.get(api_key_env_var)
        if missing and api_key is None and not base_url:
            raise InputError(f"environment variable {api_key_env_var} is not set")
        self._settings = EmbedSettings(
            model=model,
            dimensions=dimensions,
            task=task,
            api_key=SecretStr(api_key) if api_key else None,
            api_key_env=api_key_env_var,
            vertexai=vertexai,
            project=project,
            location=location,
            base_url=base_url,
            **settings,
        )
        self._config = {
            "model": self._settings.spec.id,
            "dimensions": self._settings.resolved_dimensions,
            "task": task,
            "api_key_env_var": api_key_env_var,
            "vertexai": vertexai,
            "project": project,
            "location": location,
            "base_url": base_url,
        }
        self.embedder = Embedder(self._settings)

    def __call__(self, input: Embeddable) -> Embeddings:
        return cast(Embeddings, self.embedder.embed(_items(input), role="document"))

    def embed_query(self, input: Embeddable) -> Embeddings:
        # Chroma wraps __call__'s output into arrays itself, but not embed_query's
        vectors = self.embedder.embed(_items(input), role="query")
        return cast(Embeddings, normalize_embeddings(cast(Any, vectors)))

    @staticmethod
    def name() -> str:
        return NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> GeminiEmbeddingFunction:
        kwargs: dict[str, Any] = {k: config[k] for k in _PERSISTED if k in config}
        return GeminiEmbeddingFunction(**kwargs)

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        check_compatible(old_config, new_config)

    def __repr__(self) -> str:
        return f"GeminiEmbeddingFunction({self._config})"


def check_compatible(stored: dict[str, Any], ours: dict[str, Any], collection: str = "") -> None:
    """Vectors of different models or dimensions live in different spaces: refuse to mix."""
    for key in ("model", "dimensions"):
        if key in stored and key in ours and stored[key] != ours[key]:
            where = f"collection {collection!r}" if collection else "the collection"
            raise ModelMismatchError(
                f"{where} was embedded with {key}={stored[key]!r} but this embedding function "
                f"uses {key}={ours[key]!r}; vectors from different models or dimensions are not "
                "comparable. Re-embed it (gemb2 migrate) or use the matching settings."
            )


class GeminiMediaLoader(DataLoader[list[Item]]):  # type: ignore[type-var]
    """Reads the files behind ``uris`` (paths, file:// or http(s) URLs) as media or text."""

    def __call__(self, uris: URIs) -> list[Item]:
        return [_load(u) for u in uris]


def _load(uri: str | None) -> Item:
    if uri is None:
        raise InputError("missing URI")
    return Item.from_uri(uri)


def _items(input: Embeddable | Sequence[Any]) -> list[ItemLike]:
    out: list[ItemLike] = []
    for value in input:
        if isinstance(value, np.ndarray):
            from PIL import Image

            out.append(Media.from_image(Image.fromarray(_as_uint8(value))))
        else:
            out.append(value)
    return out


def _as_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.max() <= 1.0:
        arr = arr * 255
    return np.clip(arr, 0, 255).astype(np.uint8)


def open_collection(
    client: Any, name: str, embedding_function: GeminiEmbeddingFunction, **kwargs: Any
) -> Any:
    """``get_or_create_collection`` that refuses a collection built with another model or
    dimension, and records both in the collection's metadata."""
    ours = embedding_function.get_config()
    metadata = {"gemb2:model": ours["model"], "gemb2:dimensions": ours["dimensions"]}
    metadata.update(kwargs.pop("metadata", None) or {})
    kwargs.setdefault("configuration", {"hnsw": {"space": "cosine"}})
    collection = client.get_or_create_collection(
        name,
        embedding_function=embedding_function,
        data_loader=kwargs.pop("data_loader", GeminiMediaLoader()),
        metadata=metadata,
        **kwargs,
    )
    stored_meta = collection.metadata or {}
    stored = {
        "model": stored_meta.get("gemb2:model"),
        "dimensions": stored_meta.get("gemb2:dimensions"),
    }
    ef_conf = (getattr(collection, "configuration_json", None) or {}).get("embedding_function")
    if ef_conf and ef_conf.get("name") == NAME:
        stored.update({k: v for k, v in (ef_conf.get("config") or {}).items() if v is not None})
    check_compatible({k: v for k, v in stored.items() if v is not None}, ours, name)
    return collection
