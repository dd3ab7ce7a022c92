"""Haystack components for Gemini Embedding 2: text, documents (text and media) and media queries.

Each component's ``__init__`` arguments are its whole serialised state; the engine
(batching, limits, retries, normalisation) is one ``gemb2.Embedder`` built by ``warm_up``.
The classes report ``haystack_integrations.components.embedders.gemb2`` as their module, so a
pipeline saved with ``Pipeline.dumps`` loads with Haystack's default deserialisation allowlist.
"""

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import ByteStream, FileContent, ImageContent
from haystack.utils import Secret
from pydantic import SecretStr, ValidationError

from gemb2 import ConfigError, Embedder, EmbedSettings, Gemb2Error, InputError, Item, Usage
from gemb2.transport.genai import genai_client

from ._sources import PdfPages, document_item, source_media

log = logging.getLogger("haystack_gemb2")

# The public import path; also the module Haystack records in serialised pipelines.
INTEGRATION_MODULE = "haystack_integrations.components.embedders.gemb2"
API_KEY_ENV_VARS = ["GOOGLE_API_KEY", "GEMINI_API_KEY"]


def _default_api_key() -> Secret:
    return Secret.from_env_var(API_KEY_ENV_VARS, strict=False)


class _GeminiBase:
    """Shared connection settings, warm-up, usage reporting and serialisation."""

    def _init_common(
        self,
        *,
        api_key: Secret,
        api: Literal["gemini", "vertex"],
        vertex_ai_project: str | None,
        vertex_ai_location: str | None,
        model: str,
        dimensions: int | None,
        task: str,
        api_base_url: str | None,
        timeout: float | None,
        max_retries: int | None,
        settings: dict[str, Any] | None,
        embedder: Embedder | None = None,
    ) -> None:
        if api not in ("gemini", "vertex"):
            raise ConfigError(f"api must be 'gemini' or 'vertex', got {api!r}")
        if not isinstance(api_key, Secret):
            raise ConfigError("api_key must be a haystack Secret (Secret.from_env_var(...))")
        if settings and ({"api_key", "api_key_env"} & set(settings)):
            raise ConfigError("pass the key as api_key=Secret..., not inside settings")
        self.api_key = api_key
        self.api = api
        self.vertex_ai_project = vertex_ai_project
        self.vertex_ai_location = vertex_ai_location
        self.model = model
        self.dimensions = dimensions
        self.task = task
        self.api_base_url = api_base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.settings = dict(settings or {})
        # a given engine (e.g. on gemb2.testing.FakeTransport) is used as it is; to_dict
        # leaves it out, so a serialised pipeline builds its own from the settings
        self._embedder: Embedder | None = embedder

    def _common_params(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key.to_dict(),
            "api": self.api,
            "vertex_ai_project": self.vertex_ai_project,
            "vertex_ai_location": self.vertex_ai_location,
            "model": self.model,
            "dimensions": self.dimensions,
            "task": self.task,
            "api_base_url": self.api_base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "settings": self.settings or None,
        }

    def _extra_settings(self) -> dict[str, Any]:
        return {}

    def _settings(self, key: str | None) -> EmbedSettings:
        values: dict[str, Any] = {
            **self.settings,
            **self._extra_settings(),
            "model": self.model,
            "dimensions": self.dimensions,
            "task": self.task,
            "base_url": self.api_base_url,
            "vertexai": self.api == "vertex",
            "project": self.vertex_ai_project,
            "location": self.vertex_ai_location,
            "api_key": SecretStr(key) if key else None,
        }
        if self.timeout is not None:
            values["timeout"] = self.timeout
        if self.max_retries is not None:
            values["max_retries"] = self.max_retries
        try:
            return EmbedSettings(**values)
        except ValidationError as exc:
            raise ConfigError(f"invalid {type(self).__name__} settings: {exc}") from exc

    def warm_up(self) -> None:
        """Resolve the key and build the client once; later calls do nothing."""
        if self._embedder is None:
            key = self.api_key.resolve_value() if self.api != "vertex" else None
            embedder = Embedder(self._settings(key))
            # fail here, not mid-pipeline, on missing credentials
            _ = genai_client(embedder.transport)
            self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The warmed-up engine (warms up on first use)."""
        self.warm_up()
        assert self._embedder is not None
        return self._embedder

    def close(self) -> None:
        """Release the HTTP client; the next run warms up again."""
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    async def close_async(self) -> None:
        """Release the HTTP clients, the async one too when the engine can."""
        if self._embedder is not None:
            aclose = getattr(self._embedder, "aclose", None)
            if aclose is not None:
                await aclose()
            else:
                self._embedder.close()
            self._embedder = None

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model}

    def _meta(self, before: Usage, failed: list[dict[str, str]] | None = None) -> dict[str, Any]:
        embedder = self.embedder
        meta: dict[str, Any] = {
            "model": embedder.model,
            "dimensions": embedder.dimensions,
            "usage": embedder.usage.since(before).as_dict(),
        }
        if failed is not None:
            meta["failed"] = failed
        return meta


_COMMON_DOC = """
        :param api_key: The Gemini API key; defaults to the `GOOGLE_API_KEY` or `GEMINI_API_KEY`
            environment variable. Serialised as the variable's name, never its value. Not needed
            with `api="vertex"` (Application Default Credentials) or a loopback `api_base_url`.
        :param api: `"gemini"` (Gemini Developer API) or `"vertex"` (Vertex AI).
        :param vertex_ai_project: Google Cloud project, for `api="vertex"`.
        :param vertex_ai_location: Google Cloud location, for `api="vertex"`.
        :param model: `gemini-embedding-2` (default) or `gemini-embedding-001` (text only,
            another vector space); the retired `gemini-embedding-2-preview` is sent as
            `gemini-embedding-2`.
        :param dimensions: Output dimension, 128..3072 (default 3072; 768 and 1536 recommended).
            Query and document embedders of one store must use the same model and dimension.
        :param task: What the vectors are for: `retrieval`, `question_answering`,
            `fact_checking`, `code_retrieval`, `classification`, `clustering`,
            `semantic_similarity`, or `raw` (no task conditioning).
        :param api_base_url: Another endpoint, e.g. the local emulator (`gemb2 emulator`).
        :param timeout: Seconds per HTTP request (default 60).
        :param max_retries: Retries of a failed call, with backoff (default 6).
        :param settings: Further `gemb2.EmbedSettings` fields, e.g. `{"max_concurrency": 8,
            "requests_per_minute": 1500, "normalize": True}`, or the Vertex AI only
            `auto_truncate`, `document_ocr`, `audio_track_extraction`. Must not hold the key.
        :param embedder: A `gemb2.Embedder` to use as it is (e.g. one on
            `gemb2.testing.FakeTransport` in unit tests); `to_dict` leaves it out."""


@component
class GeminiTextEmbedder(_GeminiBase):
    """Embeds a query string with Gemini Embedding 2, to search text and media alike.

    ```python
    from haystack_integrations.components.embedders.gemb2 import GeminiTextEmbedder

    embedder = GeminiTextEmbedder(dimensions=768)
    embedder.run("a red circle")  # {"embedding": [...768 floats], "meta": {...}}
    ```
    """

    __module__ = INTEGRATION_MODULE

    def __init__(
        self,
        *,
        api_key: Secret = _default_api_key(),  # noqa: B008
        api: Literal["gemini", "vertex"] = "gemini",
        vertex_ai_project: str | None = None,
        vertex_ai_location: str | None = None,
        model: str = "gemini-embedding-2",
        dimensions: int | None = None,
        task: str = "retrieval",
        prefix: str = "",
        suffix: str = "",
        api_base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        """Create the component; nothing is sent until `run`.
        %s
        :param prefix: Text added before the query (Gemini's own task prefix is added anyway).
        :param suffix: Text added after the query.
        """
        self._init_common(
            api_key=api_key,
            api=api,
            vertex_ai_project=vertex_ai_project,
            vertex_ai_location=vertex_ai_location,
            model=model,
            dimensions=dimensions,
            task=task,
            api_base_url=api_base_url,
            timeout=timeout,
            max_retries=max_retries,
            settings=settings,
            embedder=embedder,
        )
        self.prefix = prefix
        self.suffix = suffix
        self._settings(None)  # invalid model, dimensions or task fail here, not at the first run

    def to_dict(self) -> dict[str, Any]:
        """Serialise the init parameters; the key only as the names of its env vars."""
        return default_to_dict(
            self, **self._common_params(), prefix=self.prefix, suffix=self.suffix
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeminiTextEmbedder":
        """Rebuild from `to_dict` output."""
        return default_from_dict(cls, data)

    def _item(self, text: str) -> Item:
        if not isinstance(text, str):
            raise TypeError(
                "GeminiTextEmbedder expects a string as input. To embed Documents use "
                "GeminiDocumentEmbedder; to embed an image or other media as a query use "
                "GeminiMediaQueryEmbedder."
            )
        return Item(parts=(self.prefix + text + self.suffix,))

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        :param text: The query.
        :returns: `embedding` (list of floats) and `meta` (model, dimensions, usage of this run).
        """
        item = self._item(text)
        before = self.embedder.usage.snapshot()
        vector = self.embedder.embed([item], role="query")[0]
        return {"embedding": vector, "meta": self._meta(before)}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Embed one query on the SDK's async client; same inputs and outputs as `run`."""
        item = self._item(text)
        before = self.embedder.usage.snapshot()
        vector = (await self.embedder.aembed([item], role="query"))[0]
        return {"embedding": vector, "meta": self._meta(before)}


@component
class GeminiMediaQueryEmbedder(_GeminiBase):
    """Embeds an image, audio clip, video or PDF (optionally with text) as a query, to find
    the text and media documents closest to it. Connects to a retriever like a text embedder.

    ```python
    embedder = GeminiMediaQueryEmbedder(dimensions=768)
    embedder.run(source="photos/cat.png")              # a path, URL, ByteStream or ImageContent
    embedder.run(source="cat.png", text="in the snow")  # interleaved: one vector for both
    ```
    """

    __module__ = INTEGRATION_MODULE

    def __init__(
        self,
        *,
        api_key: Secret = _default_api_key(),  # noqa: B008
        api: Literal["gemini", "vertex"] = "gemini",
        vertex_ai_project: str | None = None,
        vertex_ai_location: str | None = None,
        model: str = "gemini-embedding-2",
        dimensions: int | None = None,
        task: str = "retrieval",
        root_path: str | None = None,
        api_base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        """Create the component; nothing is sent until `run`.
        %s
        :param root_path: Relative paths are read under this folder, and paths that resolve
            outside it are refused. Set it when paths come from untrusted input.
        """
        self._init_common(
            api_key=api_key,
            api=api,
            vertex_ai_project=vertex_ai_project,
            vertex_ai_location=vertex_ai_location,
            model=model,
            dimensions=dimensions,
            task=task,
            api_base_url=api_base_url,
            timeout=timeout,
            max_retries=max_retries,
            settings=settings,
            embedder=embedder,
        )
        self.root_path = root_path
        self._settings(None)  # invalid model, dimensions or task fail here, not at the first run

    def to_dict(self) -> dict[str, Any]:
        """Serialise the init parameters; the key only as the names of its env vars."""
        return default_to_dict(self, **self._common_params(), root_path=self.root_path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeminiMediaQueryEmbedder":
        """Rebuild from `to_dict` output."""
        return default_from_dict(cls, data)

    def _item(self, source: Any, text: str | None) -> Item:
        media = source_media(source, root_path=self.root_path)
        return Item(parts=(text, media) if text else (media,))

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(
        self,
        source: str | Path | ByteStream | ImageContent | FileContent,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Embed one media query.

        :param source: A file path, an http(s) or gs:// URL, a ByteStream, an ImageContent or
            a FileContent holding an image, audio, video or PDF.
        :param text: Optional text sent with the media as one interleaved input.
        :returns: `embedding` (list of floats) and `meta` (model, dimensions, usage of this run).
        """
        item = self._item(source, text)
        before = self.embedder.usage.snapshot()
        vector = self.embedder.embed([item], role="query")[0]
        return {"embedding": vector, "meta": self._meta(before)}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(
        self,
        source: str | Path | ByteStream | ImageContent | FileContent,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Async twin of `run`, on the SDK's async client."""
        item = self._item(source, text)
        before = self.embedder.usage.snapshot()
        vector = (await self.embedder.aembed([item], role="query"))[0]
        return {"embedding": vector, "meta": self._meta(before)}


@component
class GeminiDocumentEmbedder(_GeminiBase):
    """Embeds Documents, text and media alike, into one vector space; returns new Documents
    with `embedding` set (the inputs are not changed).

    A Document is embedded as media when its `blob` holds an image, audio, video or PDF, or
    when it has no `content` and `meta["file_path"]` names such a file (by `meta["mime_type"]`
    or its suffix); a PDF with `meta["page_number"]` is embedded as that page. Its text
    (`meta_fields_to_embed`, and a blob's content) goes with the media in the same vector. Any
    Document with content is text, as in every Haystack embedder: the chunks that converters
    such as `PyPDFToDocument` produce carry their source's `file_path`, which is not read.

    ```python
    docs = [Document(content="a cat on a mat"),
            Document(content="", meta={"file_path": "photos/cat.png"})]
    GeminiDocumentEmbedder(dimensions=768, root_path="data").run(docs)["documents"]
    ```
    """

    __module__ = INTEGRATION_MODULE

    def __init__(
        self,
        *,
        api_key: Secret = _default_api_key(),  # noqa: B008
        api: Literal["gemini", "vertex"] = "gemini",
        vertex_ai_project: str | None = None,
        vertex_ai_location: str | None = None,
        model: str = "gemini-embedding-2",
        dimensions: int | None = None,
        task: str = "retrieval",
        prefix: str = "",
        suffix: str = "",
        batch_size: int = 100,
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        title_meta_field: str | None = None,
        embed_media: bool = True,
        embed_file_with_content: bool = False,
        file_path_meta_field: str | None = "file_path",
        root_path: str | None = None,
        raise_on_failure: bool = True,
        api_base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        """Create the component; nothing is sent until `run`.
        %s
        :param prefix: Text added before each document's text.
        :param suffix: Text added after each document's text.
        :param batch_size: Documents per API call (at most 100).
        :param progress_bar: Show a progress bar while embedding.
        :param meta_fields_to_embed: Meta fields embedded with the content.
        :param embedding_separator: Joins the meta fields and the content.
        :param title_meta_field: Meta field sent as the document's title (Gemini's
            `title: ... | text: ...` document format).
        :param embed_media: Embed media Documents (a media `blob`, or no content and a media
            file in `file_path_meta_field`) as media. `False` embeds every Document's text only.
        :param embed_file_with_content: Also send the media file named by
            `file_path_meta_field` with a Document's `content`, as one interleaved vector. Off by
            default: converters put their source's `file_path` on every text chunk, and no
            Haystack embedder sends it. (A `blob` is always sent with the content.)
        :param file_path_meta_field: Meta field naming a document's media file; `None` ignores
            file paths.
        :param root_path: File paths are read under this folder, and paths that resolve outside
            it are refused. Set it when documents come from untrusted input.
        :param raise_on_failure: `True` raises on the first document that cannot be embedded.
            `False` logs it, returns it without an embedding and lists it in `meta["failed"]`.
        """
        self._init_common(
            api_key=api_key,
            api=api,
            vertex_ai_project=vertex_ai_project,
            vertex_ai_location=vertex_ai_location,
            model=model,
            dimensions=dimensions,
            task=task,
            api_base_url=api_base_url,
            timeout=timeout,
            max_retries=max_retries,
            settings=settings,
            embedder=embedder,
        )
        self.prefix = prefix
        self.suffix = suffix
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.title_meta_field = title_meta_field
        self.embed_media = embed_media
        self.embed_file_with_content = embed_file_with_content
        self.file_path_meta_field = file_path_meta_field
        self.root_path = root_path
        self.raise_on_failure = raise_on_failure
        self._settings(None)  # invalid model, dimensions, task or batch_size fail here

    def _extra_settings(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}

    def to_dict(self) -> dict[str, Any]:
        """Serialise the init parameters; the key only as the names of its env vars."""
        return default_to_dict(
            self,
            **self._common_params(),
            prefix=self.prefix,
            suffix=self.suffix,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            title_meta_field=self.title_meta_field,
            embed_media=self.embed_media,
            embed_file_with_content=self.embed_file_with_content,
            file_path_meta_field=self.file_path_meta_field,
            root_path=self.root_path,
            raise_on_failure=self.raise_on_failure,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeminiDocumentEmbedder":
        """Rebuild from `to_dict` output."""
        return default_from_dict(cls, data)

    def _items(
        self, documents: list[Document]
    ) -> tuple[list[int], list[Item], list[dict[str, str]]]:
        """Indices and Items of the documents to embed, and the ones that cannot be."""
        if not isinstance(documents, list) or (
            documents and not all(isinstance(d, Document) for d in documents)
        ):
            raise TypeError(
                "GeminiDocumentEmbedder expects a list of Documents as input. To embed a string "
                "use GeminiTextEmbedder."
            )
        indices: list[int] = []
        items: list[Item] = []
        failed: list[dict[str, str]] = []
        pdf_cache: PdfPages = {}
        for i, doc in enumerate(documents):
            try:
                item = document_item(
                    doc,
                    prefix=self.prefix,
                    suffix=self.suffix,
                    meta_fields_to_embed=self.meta_fields_to_embed,
                    embedding_separator=self.embedding_separator,
                    title_meta_field=self.title_meta_field,
                    file_path_meta_field=self.file_path_meta_field,
                    root_path=self.root_path,
                    embed_media=self.embed_media,
                    embed_file_with_content=self.embed_file_with_content,
                    pdf_cache=pdf_cache,
                )
                if not self.raise_on_failure:
                    self.embedder.prepare([item], role="document")  # the core's limit checks
            except InputError as exc:
                if self.raise_on_failure:
                    raise exc.at(i) from exc
                log.warning("skipping document %s: %s", doc.id, exc)
                failed.append({"id": doc.id, "error": str(exc)})
                continue
            indices.append(i)
            items.append(item)
        return indices, items, failed

    def _output(
        self,
        documents: list[Document],
        indices: list[int],
        vectors: dict[int, list[float]],
        failed: list[dict[str, str]],
        before: Usage,
    ) -> dict[str, Any]:
        out = []
        for i, doc in enumerate(documents):
            if i in vectors:
                out.append(replace(doc, embedding=vectors[i], meta=dict(doc.meta)))
            else:
                out.append(replace(doc, meta=dict(doc.meta)))
        return {
            "documents": out,
            "meta": self._meta(before, failed if not self.raise_on_failure else None),
        }

    def _landed(self, indices: list[int], vectors: dict[int, list[float]]) -> Any:
        def on_batch(positions: list[int], batch: list[list[float]]) -> None:
            for pos, vector in zip(positions, batch, strict=True):
                vectors[indices[pos]] = vector

        return on_batch

    def _failure(
        self,
        exc: Gemb2Error,
        documents: list[Document],
        indices: list[int],
        vectors: dict[int, list[float]],
        failed: list[dict[str, str]],
    ) -> None:
        """Raise, naming the document when the core named an item; or record who is missing."""
        if self.raise_on_failure:
            if isinstance(exc, InputError) and exc.item is not None and exc.item < len(indices):
                i = indices[exc.item]
                source = f"document {documents[i].id}"
                if exc.source and source not in exc.source:
                    source += f" ({exc.source})"
                raise exc.at(i, source) from exc
            raise exc
        missing = [documents[i].id for i in indices if i not in vectors]
        log.error("embedding failed for %d documents: %s", len(missing), exc)
        failed.extend({"id": doc_id, "error": str(exc)} for doc_id in missing)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Embed Documents (text, media, or both in one vector each).

        :param documents: The Documents to embed.
        :returns: `documents`: new Documents with `embedding` set; `meta`: model, dimensions,
            usage of this run (and `failed` when `raise_on_failure=False`).
        """
        indices, items, failed = self._items(documents)
        before = self.embedder.usage.snapshot()
        vectors: dict[int, list[float]] = {}
        try:
            self.embedder.embed(
                items,
                role="document",
                progress=self.progress_bar,
                on_batch=self._landed(indices, vectors),
            )
        except Gemb2Error as exc:
            self._failure(exc, documents, indices, vectors, failed)
        return self._output(documents, indices, vectors, failed, before)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """Async twin of `run`, on the SDK's async client."""
        indices, items, failed = self._items(documents)
        before = self.embedder.usage.snapshot()
        vectors: dict[int, list[float]] = {}
        try:
            await self.embedder.aembed(
                items,
                role="document",
                progress=self.progress_bar,
                on_batch=self._landed(indices, vectors),
            )
        except Gemb2Error as exc:
            self._failure(exc, documents, indices, vectors, failed)
        return self._output(documents, indices, vectors, failed, before)


for _cls in (GeminiTextEmbedder, GeminiMediaQueryEmbedder, GeminiDocumentEmbedder):
    if _cls.__init__.__doc__:
        _cls.__init__.__doc__ = _cls.__init__.__doc__.replace("%s", _COMMON_DOC.strip(), 1)
