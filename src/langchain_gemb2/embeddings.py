"""LangChain ``Embeddings`` for Gemini Embedding 2: text, media and interleaved items in one space.

A thin pydantic shell over ``gemb2.Embedder``: the fields are LangChain's usual
settings, every call goes to the core, which does batching, limits, retries and
normalisation. ``embed_image`` is the hook ``langchain_chroma.Chroma.add_images``
and ``similarity_search_by_image`` look for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from gemb2 import Embedder, EmbedSettings, Item, Usage, VectorCache
from gemb2.errors import InputError
from gemb2.inputs.media import ItemLike
from gemb2.model.catalog import Limits
from gemb2.model.tasks import Task

API_KEY_ENV_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
# metadata keys that tell one piece of a split file from another

UriLike = str | os.PathLike[str]
_UNSET = object()


class GeminiEmbeddings(BaseModel, Embeddings):
    """Gemini Embedding 2 for LangChain: documents, queries, images, audio, video and PDFs.

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

    model: str = "gemini-embedding-2"
    """Model id: ``gemini-embedding-2`` (default) or ``gemini-embedding-001``; the retired
    ``gemini-embedding-2-preview`` is sent as ``gemini-embedding-2``, with a warning."""
    dimensions: int | None = None
    """Output dimensionality, 128..3072 (model default 3072; 768 and 1536 recommended)."""
    task: Task = "retrieval"
    """What the vectors are for; sets the query/document conditioning of text."""
    google_api_key: SecretStr | None = Field(
        alias="api_key", default_factory=secret_from_env(list(API_KEY_ENV_VARS), default=None)
    )
    """Gemini API key; read from ``GOOGLE_API_KEY`` or ``GEMINI_API_KEY`` when not given."""
    vertexai: bool = False
    """Use Vertex AI (project, location and Application Default Credentials) instead of a key."""
    project: str | None = Field(default_factory=from_env("GOOGLE_CLOUD_PROJECT", default=None))
    location: str | None = Field(default_factory=from_env("GOOGLE_CLOUD_LOCATION", default=None))
    base_url: str | None = None
    """Endpoint override: a proxy, or the local emulator's URL."""
    api_version: str | None = None
    normalize: bool = True
    """L2-normalise every vector (needed below 3072 dimensions for cosine = dot product)."""
    batch_size: int = 100
    max_concurrency: int = 4
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_retries: int = 6
    """Retries after the first attempt of a batch (429, 5xx, dropped connections)."""
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    """Exponential backoff bounds in seconds; a server's retry delay takes precedence."""
    timeout: float = 60.0
    """Seconds per HTTP request."""
    use_video_audio: bool = False
    """Count a video's audio track (applies the shorter video limit)."""
    limits: Limits | None = None
    """Override the model's per-item limits (where Google's published figures disagree)."""
    auto_truncate: bool | None = None
    """Vertex AI only: the service cuts text over the token limit instead of refusing it."""
    document_ocr: bool | None = None
    """Vertex AI only: read the text of scanned PDF pages (OCR)."""
    audio_track_extraction: bool | None = None
    """Vertex AI only: embed a video's audio track too (the shorter video limit applies)."""
    cache: VectorCache | None = Field(default=None, exclude=True, repr=False)
    """Optional content-addressed cache: repeats cost no second call."""

    _embedder: Embedder = PrivateAttr()

    def __init__(self, *, embedder: Embedder | None = None, **data: Any) -> None:
        """``embedder=`` uses that core Embedder as it is, e.g. one on
        ``gemb2.testing.FakeTransport`` in a unit test: its settings win over the fields
        (changing a field later builds a new one from the fields)."""
        if embedder is not None:
            s = embedder.settings
            data = {
                "model": s.spec.id,
                "dimensions": s.resolved_dimensions,
                "task": s.task,
                "base_url": s.base_url,
                **data,
            }
        super().__init__(**data)
        if embedder is not None:
            self._embedder.close()
            self._embedder = embedder

    @model_validator(mode="after")
    def _build_embedder(self) -> GeminiEmbeddings:
        """Validate once through the core's settings, so every wrapper rejects the same things."""
        key = self.google_api_key
        if key is not None and not key.get_secret_value():
            key = None  # an empty env var means "no key", not the key ""
        settings = EmbedSettings(
            model=self.model,
            dimensions=self.dimensions,
            task=self.task,
            normalize=self.normalize,
            batch_size=self.batch_size,
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            max_retries=self.max_retries,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            timeout=self.timeout,
            use_video_audio=self.use_video_audio,
            limits=self.limits,
            auto_truncate=self.auto_truncate,
            document_ocr=self.document_ocr,
            audio_track_extraction=self.audio_track_extraction,
            api_key=key,
            vertexai=self.vertexai,
            project=self.project,
            location=self.location,
            base_url=self.base_url,
            api_version=self.api_version,
        )
        old = getattr(self, "__pydantic_private__", None) or {}
        if "_embedder" in old:
            old["_embedder"].close()
        self._embedder = Embedder(settings, cache=self.cache)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        """Pydantic sets a field before the model check runs: undo it if the check fails,
        so a rejected change leaves the settings and the engine as they were."""
        old = self.__dict__.get(name, _UNSET)
        try:
            super().__setattr__(name, value)
        except ValidationError:
            if old is not _UNSET:
                self.__dict__[name] = old
            raise

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
