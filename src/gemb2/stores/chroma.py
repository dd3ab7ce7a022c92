"""ChromaDB embedding function for Gemini Embedding 2, registered so a collection
reopened in a new process gets it back from its persisted configuration.

Chroma finds a persisted function by its name in a registry that only holds the classes
imported so far: ``import gemb2.stores.chroma`` before ``client.get_collection(name)``, or Chroma
says "Embedding function gemb2_gemini_embedding_2 not found" at the first query.

The persisted configuration holds the model, dimension, task, the connection, any other
setting given (``normalize=False``, ``max_concurrency=8``...) and the NAME of the environment
variable with the key, never the key itself. Settings follow Chroma's own functions
(``model_name``, ``dimension``, ``api_key_env_var``: ``settings_schema.RENAMES``); ``model`` and
``dimensions`` are accepted as aliases, and configurations persisted with those keys still load.
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

from gemb2.engine import settings_schema as schema
from gemb2.engine.embedder import Embedder
from gemb2.engine.settings import API_KEY_ENV_VARS, EmbedSettings
from gemb2.errors import ConfigError, InputError, ModelMismatchError
from gemb2.inputs.media import Item, ItemLike, Media

NAME = "gemb2_gemini_embedding_2"
# Chroma's GoogleGeminiEmbeddingFunction defaults to GEMINI_API_KEY; its
# GoogleGenerativeAiEmbeddingFunction takes GOOGLE_API_KEY when that is set.
DEFAULT_API_KEY_ENV_VAR = "GEMINI_API_KEY"
EXPLICIT_KEY_NOT_STORED = (
    "this collection was created with GeminiEmbeddingFunction(api_key=...); Chroma does not "
    "store the key, and gemb2 will not use another one from the environment: reopen it with "
    "client.get_collection(name, embedding_function=GeminiEmbeddingFunction(api_key=..., ...)), "
    "or create it with api_key_env_var='VAR' so that reopening reads the key from VAR"
)
# Chroma's GoogleGeminiEmbeddingFunction takes the Gemini API's taskType; gemb2's tasks
# condition both sides (the role, query or document, comes from add vs query).
CHROMA_TASK_TYPES = {
    "RETRIEVAL_DOCUMENT": "retrieval",
    "RETRIEVAL_QUERY": "retrieval",
    "QUESTION_ANSWERING": "question_answering",
    "FACT_VERIFICATION": "fact_checking",
    "CODE_RETRIEVAL_QUERY": "code_retrieval",
    "CLASSIFICATION": "classification",
    "CLUSTERING": "clustering",
    "SEMANTIC_SIMILARITY": "semantic_similarity",
}


_DEFAULTS = schema.defaults()
# settings every config holds (the space and the connection), by Chroma's names; any other
# setting is persisted when it was given, by its own name
_NAMED = (
    "model",
    "dimensions",
    "task",
    "api_key_env",
    "vertexai",
    "project",
    "location",
    "base_url",
)
# never persisted: the key (Chroma stores no secret), credentials objects, and the limiter
# (where this process shares its pacing, not a fact of the collection: a machine reopening
# it may have no such file or server; it reads GEMB2_LIMITER)
_NOT_PERSISTED = ("api_key", "credentials", "limiter")


def default_api_key_env_var() -> str:
    """The variable a key is read from when none is named: the first of the core's variables
    that is set (``GOOGLE_API_KEY``, then ``GEMINI_API_KEY``), else Chroma's default
    ``GEMINI_API_KEY``."""
    return next((v for v in API_KEY_ENV_VARS if os.environ.get(v)), DEFAULT_API_KEY_ENV_VAR)


def _one(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """Chroma's name or gemb2's alias, not two different values."""
    if value is not None and alias_value is not None and value != alias_value:
        raise ConfigError(f"{name}={value!r} and its alias {alias}={alias_value!r} disagree")
    return value if value is not None else alias_value


@register_embedding_function
class GeminiEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Embeds Chroma ``Documents`` (text), ``Images`` (pixel arrays) and media loaded
    from ``uris`` by ``GeminiMediaLoader``, all into one vector space.

    ``model_name`` (default ``gemini-embedding-2``) and ``dimension`` (128..3072, default
    3072) are Chroma's names; ``model`` and ``dimensions`` are aliases, and Chroma's
    ``task_type`` (``RETRIEVAL_DOCUMENT``, ...) maps to gemb2's ``task``. The key is read from
    ``api_key_env_var`` (default: ``GOOGLE_API_KEY`` when set, else ``GEMINI_API_KEY``), whose
    name is persisted. A key passed as ``api_key=`` is used in this process only: a collection
    reopened later refuses to guess another key unless ``api_key_env_var`` was named too.
    """

    def __init__(
        self,
        model_name: str | None = None,
        dimension: int | None = None,
        task: str = _DEFAULTS["task"],
        api_key_env_var: str | None = None,
        vertexai: bool = _DEFAULTS["vertexai"],
        project: str | None = None,
        location: str | None = None,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        dimensions: int | None = None,
        task_type: str | None = None,
        embedder: Embedder | None = None,
        **settings: Any,
    ) -> None:
        if embedder is not None:  # its settings are the function's (and what is persisted)
            es = embedder.settings
            model_name, dimension, task = es.spec.id, es.resolved_dimensions, es.task
            vertexai, project, location, base_url = (
                es.vertexai,
                es.project,
                es.location,
                (es.base_url),
            )
            api_key_env_var = api_key_env_var or es.api_key_env
        model_name = _one("model_name", model_name, "model", model) or _DEFAULTS["model"]
        dimension = _one("dimension", dimension, "dimensions", dimensions)
        if task_type is not None:
            if task_type.upper() not in CHROMA_TASK_TYPES:
                raise ConfigError(
                    f"task_type={task_type!r} is not one of {', '.join(CHROMA_TASK_TYPES)}"
                )
            mapped = CHROMA_TASK_TYPES[task_type.upper()]
            if task not in (_DEFAULTS["task"], mapped):
                raise ConfigError(f"task={task!r} and task_type={task_type!r} disagree")
            task = mapped
        if api_key is not None and not api_key.strip():
            raise ConfigError("api_key is empty: pass the key, or name its api_key_env_var")
        explicit_key = api_key is not None
        env_var = api_key_env_var
        if env_var is None and not explicit_key and not vertexai:
            env_var = default_api_key_env_var()
        needs_env = env_var and not (explicit_key or vertexai or base_url or embedder)
        if needs_env and not os.environ.get(env_var or ""):
            raise ConfigError(
                f"environment variable {env_var} is not set: set it to a Gemini API key, "
                "name another with api_key_env_var=..., or pass api_key=..."
            )
        self._settings = schema.build(
            {
                "model": model_name,
                "dimensions": dimension,
                "task": task,
                "api_key": SecretStr(api_key) if api_key else None,
                "api_key_env": env_var,
                "vertexai": vertexai,
                "project": project,
                "location": location,
                "base_url": base_url,
                **settings,
            },
            wrap=lambda text: f"invalid GeminiEmbeddingFunction settings: {text}",
        )
        self.model_name = self._settings.spec.id
        self.dimension = self._settings.resolved_dimensions
        self.api_key_env_var = env_var
        given = set(settings)
        if embedder is not None:
            self._settings = embedder.settings
            given = {n for n, d in _DEFAULTS.items() if getattr(self._settings, n) != d}
        self._config = _config(self._settings, given, explicit_key, env_var)
        self.embedder = embedder or Embedder(self._settings)

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

    def is_legacy(self) -> bool:
        # Chroma's default check rebuilds the function from its config: a second client for
        # nothing, and it cannot be done for a function made with an explicit key
        return False

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> GeminiEmbeddingFunction:
        """The function a persisted config describes; configs written with ``model`` and
        ``dimensions`` (gemb2 before Chroma's names) load too."""
        if config.get("explicit_api_key") and not config.get("api_key_env_var"):
            return _KeyNotStored(config)
        names = schema.wrapper_names("chroma")
        named = {names[n] for n in _NAMED}
        others = {k: v for k, v in config.items() if k in schema.settings() and k not in named}
        return GeminiEmbeddingFunction(
            model_name=config.get("model_name", config.get("model")),
            dimension=config.get("dimension", config.get("dimensions")),
            task=config.get("task", _DEFAULTS["task"]),
            api_key_env_var=config.get("api_key_env_var"),
            vertexai=bool(config.get("vertexai", _DEFAULTS["vertexai"])),
            project=config.get("project"),
            location=config.get("location"),
            base_url=config.get("base_url"),
            **others,
        )

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        check_compatible(old_config, new_config)

    def __repr__(self) -> str:
        return f"GeminiEmbeddingFunction({self._config})"


class _KeyNotStored(GeminiEmbeddingFunction):
    """What a collection created with an explicit ``api_key=`` reopens to without it: it
    embeds nothing, rather than with whatever key the environment holds, and says how to pass
    the key. Built lazily so that Chroma's reading of the collection's schema does not warn;
    the error comes at the first add or query."""

    def __init__(self, config: dict[str, Any]) -> None:  # no super().__init__: no key, no client
        self._config = dict(config)
        space = _space_of(config)
        settings = EmbedSettings(
            model=space.get("model_name", _DEFAULTS["model"]), dimensions=space.get("dimension")
        )
        self.model_name = settings.spec.id
        self.dimension = settings.resolved_dimensions
        self.api_key_env_var = None

    def __call__(self, input: Embeddable) -> Embeddings:
        raise ConfigError(EXPLICIT_KEY_NOT_STORED)

    def embed_query(self, input: Embeddable) -> Embeddings:
        raise ConfigError(EXPLICIT_KEY_NOT_STORED)


def _config(
    settings: EmbedSettings, given: set[str], explicit_key: bool, env_var: str | None
) -> dict[str, Any]:
    """What Chroma persists: the named settings always, any other one given, by Chroma's
    names (``settings_schema.RENAMES``), as JSON; the key's variable, never the key."""
    values = settings.model_dump(mode="json", exclude=set(_NOT_PERSISTED))
    values.update(model=settings.spec.id, dimensions=settings.resolved_dimensions)
    values["api_key_env"] = env_var
    names = schema.wrapper_names("chroma")
    out = {names[n]: values[n] for n in _NAMED}
    out["explicit_api_key"] = explicit_key
    for name in sorted(given - set(_NAMED) - set(_NOT_PERSISTED)):
        out[names[name]] = values[name]
    return out


def _space_of(config: dict[str, Any]) -> dict[str, Any]:
    """Model and dimension of a config in either spelling (Chroma's or the older gemb2 one)."""
    out = {
        "model_name": config.get("model_name", config.get("model")),
        "dimension": config.get("dimension", config.get("dimensions")),
    }
    return {k: v for k, v in out.items() if v is not None}


def check_compatible(stored: dict[str, Any], ours: dict[str, Any], collection: str = "") -> None:
    """Vectors of different models or dimensions live in different spaces: refuse to mix."""
    old, new = _space_of(stored), _space_of(ours)
    for key in ("model_name", "dimension"):
        if key in old and key in new and old[key] != new[key]:
            where = f"collection {collection!r}" if collection else "the collection"
            raise ModelMismatchError(
                f"{where} was embedded with {key}={old[key]!r} but this embedding function "
                f"uses {key}={new[key]!r}; vectors from different models or dimensions are not "
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
    metadata = {
        "gemb2:model": embedding_function.model_name,
        "gemb2:dimensions": embedding_function.dimension,
    }
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
    stored = _space_of(
        {"model": stored_meta.get("gemb2:model"), "dimensions": stored_meta.get("gemb2:dimensions")}
    )
    ef_conf = (getattr(collection, "configuration_json", None) or {}).get("embedding_function")
    if ef_conf and ef_conf.get("name") == NAME:
        stored.update(_space_of(ef_conf.get("config") or {}))
    check_compatible(stored, ours, name)
    return collection
