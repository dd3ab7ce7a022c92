"""Gemini Embedding 2 as a LlamaIndex ``MultiModalEmbedding``.

Text, queries, images (and any other media the model takes) land in one vector
space. As a pipeline transformation it embeds what each node really holds: the
media of media nodes (LlamaIndex's own ``__call__`` would embed their empty text)
and the EMBED-mode text of text nodes; media nodes without text get their label, so
``VectorStoreIndex`` keeps them. Batching, limits, retries and caching are the core
``gemb2.Embedder``'s; this class is glue.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.schema import BaseNode, ImageType, MetadataMode

from gemb2 import (
    Embedder,
    EmbedSettings,
    InputError,
    Item,
    Media,
    Usage,
    VectorCache,
)
from gemb2.engine import settings_schema as schema
from gemb2.ingest.pieces import label
from gemb2.inputs.detect import media_type
from gemb2.inputs.media import ItemLike

from ._cache import cache_refusal, in_cached_run, keyed_on_content
from ._media import Resolver, marked, node_name

dispatcher = get_dispatcher(__name__)

_URL_PREFIXES = ("http://", "https://", "gs://", "files/")

if TYPE_CHECKING:  # the fields are made at run time from gemb2's settings schema

    class _SettingFields(MultiModalEmbedding):
        def __getattr__(self, name: str) -> Any: ...

else:
    _SettingFields = schema.settings_base(
        "llamaindex", MultiModalEmbedding, name="GeminiEmbeddingSettings", module=__name__
    )


class GeminiMultiModalEmbedding(_SettingFields):
    """Gemini Embedding 2 for LlamaIndex: text, query, image, audio, video and PDF
    embeddings in one space, and a pipeline step that embeds media nodes' media.

    The setting fields are ``gemb2.EmbedSettings``' (same defaults, bounds and docs; the
    model under BaseEmbedding's ``model_name``; see ``gemb2.engine.settings_schema``).
    The API key comes from ``api_key=`` (never stored in a field, so never in
    ``to_dict``/``to_json``), else from the env var named by ``api_key_env``, else
    ``GOOGLE_API_KEY``/``GEMINI_API_KEY``. A loopback ``base_url`` (the emulator)
    needs none.

    >>> embed_model = GeminiMultiModalEmbedding(dimensions=768)  # doctest: +SKIP
    >>> embed_model.get_image_embedding("cat.png")  # doctest: +SKIP
    """

    embed_batch_size: int = Field(
        default=1000,
        gt=0,
        le=2048,
        description="Texts LlamaIndex hands over per call; the core splits them into "
        "requests of at most batch_size and runs those concurrently.",
    )
    overlap_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Overlap of audio/video segments, used only to cut a piece again "
        "when a node parsed in another process is embedded.",
    )
    interleave_text: bool = Field(
        default=False,
        description="Send a media node's own text (a caption) with its media as one "
        "interleaved input instead of the media alone.",
    )

    _embedder: Embedder = PrivateAttr()
    _resolver: Resolver = PrivateAttr()

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None = None,
        settings: EmbedSettings | None = None,
        cache: VectorCache | None = None,
        embedder: Embedder | None = None,
        **data: Any,
    ) -> None:
        """``settings`` shares one ``EmbedSettings`` with other wrappers; ``cache`` is
        the core's content-addressed vector cache (it covers media, unlike
        LlamaIndex's text-keyed ``embeddings_cache``); ``embedder`` is used as it is (its
        settings win: e.g. ``Embedder(transport=gemb2.testing.FakeTransport())`` in tests)."""
        if embedder is not None:
            settings = embedder.settings
        if settings is not None:
            data = {**schema.from_core("llamaindex", settings), **data}
            if api_key is None and settings.api_key is not None:
                api_key = settings.api_key
        super().__init__(**data)  # each field's own bounds, as the core's
        key = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        fields = {n: getattr(self, n) for n in type(self).model_fields}
        core = schema.build({**schema.to_core("llamaindex", fields), "api_key": key})
        self.model_name = core.spec.id
        self.dimensions = core.resolved_dimensions
        self._embedder = embedder or Embedder(core, cache=cache)
        self._resolver = Resolver(
            core.resolved_limits,
            use_video_audio=core.use_video_audio,
            overlap_seconds=self.overlap_seconds,
            interleave_text=self.interleave_text,
        )

    @classmethod
    def class_name(cls) -> str:
        return "GeminiMultiModalEmbedding"

    @property
    def embedder(self) -> Embedder:
        """The core engine, for ``usage``, ``settings`` or direct calls."""
        return self._embedder

    @property
    def usage(self) -> Usage:
        return self._embedder.usage

    def close(self) -> None:
        self._embedder.close()

    # -- LlamaIndex's embedding methods ------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embedder.embed([query], role="query")[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._embedder.aembed([query], role="query"))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embedder.embed(_texts([text]), role="document")[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._embedder.aembed(_texts([text]), role="document"))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embedder.embed(_texts(texts), role="document")

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._embedder.aembed(_texts(texts), role="document")

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._embedder.embed([_image(img_file_path)], role="document")[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._embedder.aembed([_image(img_file_path)], role="document"))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._embedder.embed([_image(p) for p in img_file_paths], role="document")

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._embedder.aembed([_image(p) for p in img_file_paths], role="document")

    # -- the pipeline step -------------------------------------------------------------

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed each node's media (media nodes) or EMBED-mode text (text nodes); use
        the nodes it returns: a media node without text comes back labelled.

        Under IngestionPipeline's cache, media nodes whose cache key cannot depend on
        their content are refused before any call (see ``label_media``)."""
        resolved = self._resolve(nodes, cached=in_cached_run())
        with self._embedding_event(nodes) as record:
            vectors = record(self._embedder.embed(**_request(resolved, kwargs)))
        return _finish(nodes, resolved, vectors)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async twin of ``__call__`` (the same steps); files are read off the event loop."""
        cached = in_cached_run()  # before leaving the caller's frames for a thread
        resolved = await asyncio.to_thread(self._resolve, nodes, cached=cached)
        with self._embedding_event(nodes) as record:
            vectors = record(await self._embedder.aembed(**_request(resolved, kwargs)))
        return _finish(nodes, resolved, vectors)

    @contextmanager
    def _embedding_event(
        self, nodes: Sequence[BaseNode]
    ) -> Iterator[Callable[[list[Embedding]], list[Embedding]]]:
        """LlamaIndex's embedding events (instrumentation and callback manager) around
        one call; the caller hands the vectors to the function it yields."""
        chunks, payload = [_chunk(n) for n in nodes], self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        done: list[list[Embedding]] = []
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:

            def record(vectors: list[Embedding]) -> list[Embedding]:
                event.on_end(
                    payload={EventPayload.CHUNKS: chunks, EventPayload.EMBEDDINGS: vectors}
                )
                done.append(vectors)
                return vectors

            yield record
        dispatcher.event(EmbeddingEndEvent(chunks=chunks, embeddings=done[0]))

    def _resolve(
        self, nodes: Sequence[BaseNode], *, cached: bool
    ) -> list[tuple[Item | str, list[Media]]]:
        """Each node's input and media, refusing what must not be sent."""
        out: list[tuple[Item | str, list[Media]]] = []
        unkeyed: list[str] = []
        for i, node in enumerate(nodes):
            media = self._resolver.media(node)
            item = self._resolver.item(node, media)
            if isinstance(item, str):
                _check_text(item, i, node_name(node))
            elif cached and not keyed_on_content(node):
                unkeyed.append(node_name(node))
            out.append((item, media))
        if unkeyed:
            raise cache_refusal(unkeyed)
        return out


def _request(
    resolved: list[tuple[Item | str, list[Media]]], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The Embedder's arguments (``embed`` and ``aembed`` take the same) for resolved nodes."""
    return {
        "inputs": [item for item, _ in resolved],
        "role": "document",
        "progress": bool(kwargs.get("show_progress")),
    }


def _finish(
    nodes: Sequence[BaseNode],
    resolved: list[tuple[Item | str, list[Media]]],
    vectors: list[Embedding],
) -> Sequence[BaseNode]:
    """Set each node's vector. A media node without text comes back as a copy with its
    label (and ``file_hash``), so VectorStoreIndex does not drop it as empty; the input
    node keeps its content, so the hash a docstore keeps for it stays the same."""
    out: list[BaseNode] = []
    for node, (_, media), vector in zip(nodes, resolved, vectors, strict=True):
        node.embedding = vector
        out.append(marked(node, media) if media else node)
    if all(a is b for a, b in zip(out, nodes, strict=True)):
        return nodes
    return out


_FILE_IN_TEXT = re.compile(r"^file_(?:path|name): ([^\n]+)$", re.MULTILINE)
_METADATA_LINE = re.compile(r"^[^\s:][^:\n]*: [^\n]*$")
_FIX = (
    "an index given only embed_model= embeds node text; to embed media as media, put "
    "the model in transformations=[...] of VectorStoreIndex.from_documents or "
    "IngestionPipeline, or load the files with GeminiMediaReader"
)


def _check_text(text: str, item: int, source: str | None = None) -> None:
    """Refuse, before any call, a text that stands for media: it would be paid for
    and stored as a vector of bytes or of a file name, not of the media."""
    files = _FILE_IN_TEXT.findall(text[:4096])
    found = source or next(iter(files), None)  # an index puts metadata in front: name it
    if "\x00" in text:
        raise InputError(
            "text holds NUL characters: it looks like a binary file read as text "
            "(SimpleDirectoryReader does this to images, audio and video when "
            f"llama-index-readers-file is not installed); {_FIX}",
            item=item,
            source=found,
        )
    lines = text.splitlines()
    if (
        files
        and all(_METADATA_LINE.match(line) for line in lines)
        and any(media_type(f.strip()) for f in files)
    ):
        raise InputError(
            "text is only the metadata of a media node with no text of its own (as "
            "llama-index-readers-file's ImageReader makes for each image), so the "
            f"file would be embedded as its file name; {_FIX}",
            item=item,
            source=found,
        )


def _texts(texts: list[str]) -> list[str]:
    for i, text in enumerate(texts):
        _check_text(text, i)
    return texts


def _chunk(node: BaseNode) -> str:
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    return text or label(node.metadata)


def _image(value: Any) -> ItemLike:
    """LlamaIndex's ``ImageType`` (a path or URL string, or BytesIO) to a core input."""
    if isinstance(value, BytesIO):
        return Media.from_bytes(value.getvalue(), name="<image bytes>")
    if isinstance(value, (bytes, bytearray)):
        return Media.from_bytes(bytes(value), name="<image bytes>")
    if isinstance(value, str):
        return Media.from_url(value) if value.startswith(_URL_PREFIXES) else Path(value)
    return value
