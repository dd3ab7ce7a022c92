"""Matryoshka shortlist-and-rerank as a LangChain retriever."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from gemb2.stores.matryoshka import Hit, MatryoshkaIndex


class GeminiMatryoshkaRetriever(BaseRetriever):
    """Searches small (e.g. 768-d) vectors for ``k x oversample`` candidates and re-ranks
    them on the full 3072-d vectors; ``metadata["score"]`` is the full-size cosine.

    ```python
    index = MatryoshkaIndex(collection, FullVectorStore(path, 3072), Embedder(dimensions=3072))
    retriever = GeminiMatryoshkaRetriever(index=index, k=5)
    retriever.invoke("a red circle")
    ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: MatryoshkaIndex
    k: int = 4
    where: dict[str, Any] | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [_document(h) for h in self.index.query(query, self.k, where=self.where)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = await self.index.aquery(query, self.k, where=self.where)
        return [_document(h) for h in hits]


def _document(hit: Hit) -> Document:
    meta = {**hit.metadata, "score": hit.score, "shortlist_score": hit.shortlist_score}
    return Document(id=hit.id, page_content=hit.document or "", metadata=meta)
