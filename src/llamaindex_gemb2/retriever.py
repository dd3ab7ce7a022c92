"""Matryoshka shortlist-and-rerank as a LlamaIndex retriever."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from gemb2.stores.matryoshka import Hit, MatryoshkaIndex


class GeminiMatryoshkaRetriever(BaseRetriever):
    """Shortlists ``similarity_top_k x oversample`` nodes on small vectors and re-ranks them
    on full vectors; each ``NodeWithScore.score`` is the full-size cosine."""

    def __init__(
        self,
        index: MatryoshkaIndex,
        similarity_top_k: int = 4,
        where: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._index = index
        self._top_k = similarity_top_k
        self._where = where
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._index.query(query_bundle.query_str, self._top_k, where=self._where)
        return [_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self._index.aquery(query_bundle.query_str, self._top_k, where=self._where)
        return [_node(h) for h in hits]


def _node(hit: Hit) -> NodeWithScore:
    meta = {**hit.metadata, "shortlist_score": hit.shortlist_score}
    return NodeWithScore(
        node=TextNode(id_=hit.id, text=hit.document or "", metadata=meta), score=hit.score
    )
