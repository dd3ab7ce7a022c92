"""LangChain ``Embeddings`` for Gemini Embedding 2: text, media and interleaved items in one space.

A thin pydantic shell over ``gemb2.Embedder``: the fields are ``gemb2.EmbedSettings``'
(made from ``gemb2.engine.settings_schema``); every call goes to the core, which does
batching, limits, retries and normalisation. ``embed_image`` is the hook
``langchain_chroma.Chroma.add_images`` and ``similarity_search_by_image`` look for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from gemb2 import Embedder, EmbedSettings, Item, Usage, VectorCache
from gemb2.engine import settings_schema as schema
from gemb2.errors import InputError
from gemb2.inputs.media import ItemLike

UriLike = str | os.PathLike[str]
_ALIASES = {"api_key": "google_api_key"}


def _env_defaults() -> dict[str, dict[str, Any]]:
    """LangChain's partner convention: a setting held in the environment defaults to it
    (the key as a ``SecretStr``), read when the object is made; the names are the core's."""
    out: dict[str, dict[str, Any]] = {}
    for core, wrapper in schema.wrapper_names("langchain").items():
        env = schema.settings()[core].env
        if env:
            read = secret_from_env if core == "api_key" else from_env
            out[wrapper] = {"default_factory": read(list(env), default=None)}
    for alias, field in _ALIASES.items():
        out[field]["alias"] = alias
    return out


if TYPE_CHECKING:  # the fields are made at run time from gemb2's settings schema

    class _SettingFields(BaseModel):
        def __getattr__(self, name: str) -> Any: ...

else:
    _SettingFields = schema.settings_base(
        "langchain",
        BaseModel,
        name="GeminiEmbeddingsSettings",
        module=__name__,
        changes=_env_defaults(),
    )


class GeminiEmbeddings(_SettingFields, Embeddings):
    """Gemini Embedding 2 for LangChain: documents, queries, images, audio, video and PDFs.

    The fields are ``gemb2.EmbedSettings``' (same defaults, bounds and docs; see
    ``gemb2.engine.settings_schema``), the key under langchain-google-genai's name.

    Setup:
        Set ``GOOGLE_API_KEY`` (or ``GEMINI_API_KEY``), or pass ``api_key=...``; for
        Vertex AI pass ``vertexai=True`` with ``project`` and ``location`` (read from
        ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION`` when unset). ``base_url``
        points it at a proxy or the local emulator (``gemb2 emulator``); a loopback
        ``base_url`` needs no key.

    Instantiate:
        .. code-block:: python

            from langchain_gemb2 import GeminiEmbeddings

            embeddings = GeminiEmbeddings(dimensions=768)

    Embed:
        .. code-block:: python

            embeddings.embed_query("a red circle")
            embeddings.embed_documents(["doc one", "doc two"])
            embeddings.embed_image(["photo.png", "talk.mp3", "clip.mp4", "paper.pdf"])
            embeddings.embed_items([["caption", Path("photo.png")]])  # one interleaved vector
    """

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        protected_namespaces=(),
        validate_assignment=True,
        arbitrary_types_allowed=True,
        hide_input_in_errors=True,
    )

    cache: VectorCache | None = Field(default=None, exclude=True, repr=False)
    """Optional content-addressed cache: repeats cost no second call."""

    _embedder: Embedder = PrivateAttr()

    def __init__(self, *, embedder: Embedder | None = None, **data: Any) -> None:
        """``embedder=`` uses that core Embedder as it is, e.g. one on
        ``gemb2.testing.FakeTransport`` in a unit test: its settings win over the fields
        (changing a field later builds a new one from the fields)."""
        if embedder is not None:
            s = embedder.settings
            seeded = schema.from_core("langchain", s, exclude=() if s.api_key else ("api_key",))
            seeded.update(model=s.spec.id, dimensions=s.resolved_dimensions)
            given = schema.to_core("langchain", data, _ALIASES)  # by core name
            names = schema.core_names("langchain")
            data = {**{k: v for k, v in seeded.items() if names[k] not in given}, **data}
        super().__init__(**data)
        if embedder is not None:
            self._embedder.close()
            self._embedder = embedder

    @model_validator(mode="before")
    @classmethod
    def _check_with_core(cls, data: Any) -> Any:
        """The core's cross-setting checks, before any field is set: a refused change (at
        construction or assignment) leaves the object as it was, with the core's message."""
        if isinstance(data, dict):
            schema.check(schema.to_core("langchain", data, _ALIASES))
        return data

    @model_validator(mode="after")
    def _build_embedder(self) -> GeminiEmbeddings:
        """One engine from the fields: every wrapper builds the same ``EmbedSettings``."""
        values = schema.to_core("langchain", {n: getattr(self, n) for n in type(self).model_fields})
        key = values.get("api_key")
        if key is not None and not key.get_secret_value():
            values["api_key"] = None  # an empty env var means "no key", not the key ""
        settings = EmbedSettings(**values)
        old = getattr(self, "__pydantic_private__", None) or {}
        if "_embedder" in old:
            old["_embedder"].close()
        self._embedder = Embedder(settings, cache=self.cache)
        return self

    # -- the core, for callers who want usage, cost or the raw engine ----------------

    @property
    def embedder(self) -> Embedder:
        """The core engine behind this object (shares its client, limiter and usage)."""
        return self._embedder

    @property
    def usage(self) -> Usage:
        """Requests, items, retries, tokens and estimated cost so far."""
        return self._embedder.usage

    @property
    def output_dimensions(self) -> int:
        """The dimension of every vector this returns (resolves the model default)."""
        return self._embedder.dimensions

    # -- LangChain's Embeddings interface ----------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as documents (the retrieval side of the task)."""
        return self._embedder.embed(_texts(texts), role="document")

    def embed_query(self, text: str) -> list[float]:
        """Embed one text as a query."""
        return self._embedder.embed(_texts([text]), role="query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async ``embed_documents`` on the SDK's async client."""
        return await self._embedder.aembed(_texts(texts), role="document")

    async def aembed_query(self, text: str) -> list[float]:
        """Async ``embed_query`` on the SDK's async client."""
        return (await self._embedder.aembed(_texts([text]), role="query"))[0]

    # -- media and interleaved items ---------------------------------------------------

    def embed_image(self, uris: Sequence[UriLike]) -> list[list[float]]:
        """One vector per file: image, audio, video or PDF, by path, ``file://``,
        ``http(s)://`` or ``gs://`` URI. LangChain's name; ``Chroma.add_images`` and
        ``similarity_search_by_image`` call it. Files over the model's limits raise
        ``LimitExceededError``: load them with ``MixedMediaLoader`` to split them."""
        return self._embedder.embed(_uri_items(uris), role="document")

    async def aembed_image(self, uris: Sequence[UriLike]) -> list[list[float]]:
        """Async ``embed_image``."""
        return await self._embedder.aembed(_uri_items(uris), role="document")

    def embed_items(
        self, items: Sequence[ItemLike], *, role: str = "document"
    ) -> list[list[float]]:
        """One vector per item: a ``gemb2.Item``, a ``Path``, a ``gemb2.Media``, a PIL
        image, a string (always text), or a list of parts (text and media interleaved
        into ONE vector). ``role`` is ``"document"`` or ``"query"``."""
        return self._embedder.embed(list(items), role=_role(role))

    async def aembed_items(
        self, items: Sequence[ItemLike], *, role: str = "document"
    ) -> list[list[float]]:
        """Async ``embed_items``."""
        return await self._embedder.aembed(list(items), role=_role(role))

    def embed_media_documents(self, documents: Sequence[Document]) -> list[list[float]]:
        """Embed Documents from ``MixedMediaLoader`` as what they hold: text as text,
        media (or a page/time piece of it) as media. Other Documents embed their text."""
        return self._embedder.embed(self._document_items(documents), role="document")

    async def aembed_media_documents(self, documents: Sequence[Document]) -> list[list[float]]:
        """Async ``embed_media_documents``."""
        return await self._embedder.aembed(self._document_items(documents), role="document")

    def _document_items(self, documents: Sequence[Document]) -> list[Item]:
        from gemb2.ingest.pieces import (
            load_piece,  # pulls in the PDF/AV splitters only when needed
        )

        s = self._embedder.settings
        items = []
        for i, doc in enumerate(documents):
            meta = doc.metadata or {}
            if meta.get("modality", "text") == "text" or "source" not in meta:
                items.append(Item(parts=(doc.page_content,), metadata=dict(meta)))
                continue
            try:
                piece = load_piece(meta, s.resolved_limits, use_video_audio=s.use_video_audio)
            except InputError as exc:
                raise exc.at(i) from exc
            items.append(piece)
        return items


def _texts(texts: Sequence[str]) -> list[Item]:
    """LangChain hands strings: they are always text, never paths."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(
                f"expected a string, got {type(text).__name__}; use embed_image or "
                "embed_items for media",
                item=i,
            )
        out.append(Item(parts=(text,)))
    return out


def _role(role: str) -> Any:
    if role not in ("document", "query"):
        raise ValueError(f"role must be 'document' or 'query', not {role!r}")
    return role


def _uri_items(uris: Sequence[UriLike]) -> list[Item]:
    """Paths and URIs to Items; the core reads, sniffs and checks the files."""
    if isinstance(uris, (str, os.PathLike)):
        raise TypeError("embed_image takes a list of URIs, e.g. embed_image(uris=[path])")
    items = []
    for i, uri in enumerate(uris):
        try:
            items.append(Item.from_uri(uri))
        except InputError as exc:
            raise exc.at(i) from exc
    return items
