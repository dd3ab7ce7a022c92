"""``GeminiDocumentEmbedder``: Documents, text and media alike, to vectors in one space."""

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from haystack import Document, component

from gemb2 import Gemb2Error, InputError, Item, Usage
from gemb2.engine import settings_schema as schema

from ._base import INTEGRATION_MODULE, GeminiComponent
from ._sources import PdfPages, document_item

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._base import GeminiParams

log = logging.getLogger("haystack_gemb2")


@component
class GeminiDocumentEmbedder(GeminiComponent):
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
        prefix: str = "",
        suffix: str = "",
        batch_size: int = schema.defaults()["batch_size"],
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        title_meta_field: str | None = None,
        embed_media: bool = True,
        embed_file_with_content: bool = False,
        file_path_meta_field: str | None = "file_path",
        root_path: str | None = None,
        raise_on_failure: bool = True,
        **params: "Unpack[GeminiParams]",
    ) -> None:
        """Create the component; nothing is sent until `run`.

        :param prefix: Text added before each document's text.
        :param suffix: Text added after each document's text.
        :param batch_size: Documents per API call (the core's `batch_size`, at most 100).
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
        %s
        """
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
        self._init_shared(**params)

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
