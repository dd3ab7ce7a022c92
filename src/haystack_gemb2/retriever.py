"""Matryoshka shortlist-and-rerank as a Haystack retriever component."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from haystack import Document, component

from gemb2.stores.matryoshka import FullVectorStore, Hit, MatryoshkaIndex

from ._base import GeminiComponent

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._base import GeminiParams


@component
class GeminiMatryoshkaRetriever(GeminiComponent):
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
        **params: "Unpack[GeminiParams]",
    ) -> None:
        """Create the component; the collection is opened at the first run.

        :param chroma_path: The Chroma persistent client's folder.
        :param collection_name: The collection holding the small vectors.
        :param side_store_path: The side store holding the full vectors.
        :param small_dims: The dimension of the collection's vectors.
        :param oversample: Records shortlisted per result wanted.
        :param top_k: Results returned.
        %s
        """
        self.chroma_path, self.collection_name = chroma_path, collection_name
        self.side_store_path = side_store_path
        self.small_dims, self.oversample, self.top_k = small_dims, oversample, top_k
        self._index: MatryoshkaIndex | None = None
        self._init_shared(**params)

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
