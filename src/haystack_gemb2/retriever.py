"""Matryoshka shortlist-and-rerank as a Haystack retriever component."""

from pathlib import Path
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import Secret

from gemb2 import Embedder
from gemb2.stores.matryoshka import FullVectorStore, Hit, MatryoshkaIndex

from .embedders import _default_api_key, _GeminiBase


@component
class GeminiMatryoshkaRetriever(_GeminiBase):
    """Embeds the query once at full size, shortlists ``top_k x oversample`` records on the
    small vectors of a Chroma collection and re-ranks them on the full vectors kept in the
    side store beside it. ``Document.score`` is the full-size cosine.

    The collection and side store are the ones ``gemb2 index --rerank-dims N`` (or
    ``gemb2.stores.matryoshka.MatryoshkaIndex``) writes.
    """

    __module__ = "haystack_integrations.components.retrievers.gemb2"

    def __init__(
        self,
        *,
        chroma_path: str,
        collection_name: str,
        side_store_path: str,
        small_dims: int = 768,
        oversample: int = 4,
        top_k: int = 10,
        api_key: Secret = _default_api_key(),  # noqa: B008
        api: Literal["gemini", "vertex"] = "gemini",
        vertex_ai_project: str | None = None,
        vertex_ai_location: str | None = None,
        model: str = "gemini-embedding-2",
        dimensions: int | None = None,
        task: str = "retrieval",
        api_base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
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
        self.chroma_path, self.collection_name = chroma_path, collection_name
        self.side_store_path = side_store_path
        self.small_dims, self.oversample, self.top_k = small_dims, oversample, top_k
        self._index: MatryoshkaIndex | None = None
        self._settings(None)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            **self._common_params(),
            chroma_path=self.chroma_path,
            collection_name=self.collection_name,
            side_store_path=self.side_store_path,
            small_dims=self.small_dims,
            oversample=self.oversample,
            top_k=self.top_k,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeminiMatryoshkaRetriever":
        return default_from_dict(cls, data)

    @property
    def index(self) -> MatryoshkaIndex:
        if self._index is None:
            import chromadb

            collection = chromadb.PersistentClient(path=self.chroma_path).get_collection(
                self.collection_name
            )
            store = FullVectorStore(Path(self.side_store_path), self.embedder.dimensions)
            self._index = MatryoshkaIndex(
                collection,
                store,
                self.embedder,
                small_dims=self.small_dims,
                oversample=self.oversample,
            )
        return self._index

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None) -> dict[str, Any]:
        """Retrieve the ``top_k`` best records for a text query, scored on full vectors."""
        hits = self.index.query(query, top_k or self.top_k)
        return {"documents": [_document(h) for h in hits]}

    @component.output_types(documents=list[Document])
    async def run_async(self, query: str, top_k: int | None = None) -> dict[str, Any]:
        hits = await self.index.aquery(query, top_k or self.top_k)
        return {"documents": [_document(h) for h in hits]}


def _document(hit: Hit) -> Document:
    meta = {**hit.metadata, "shortlist_score": hit.shortlist_score}
    return Document(id=hit.id, content=hit.document, meta=meta, score=hit.score)
