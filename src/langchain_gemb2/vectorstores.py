"""Put media Documents into a LangChain vector store as media vectors.

``VectorStore.add_documents`` embeds ``page_content`` as text, which for a video
or a PDF piece is only a label. This embeds what the Document points at instead
and writes the vectors through the store, so text queries retrieve the media.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from gemb2.stores.writer import write_records

from .embeddings import GeminiEmbeddings
from .loaders import document_id


def add_media_documents(
    vectorstore: VectorStore,
    documents: Sequence[Document],
    *,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Embed ``documents`` (from ``MixedMediaLoader``) as text or media and upsert them.

    Works with ``langchain_chroma.Chroma`` and any store with FAISS-style
    ``add_embeddings(text_embeddings, metadatas, ids)``. The store's embedding
    function must be a ``GeminiEmbeddings``, so queries and media share one space.
    Returns the ids (the Documents' own ids, else stable ones from their metadata).
    """
    embeddings = vectorstore.embeddings
    if not isinstance(embeddings, GeminiEmbeddings):
        raise TypeError(
            "the vector store's embedding function must be GeminiEmbeddings, got "
            f"{type(embeddings).__name__}: vectors of different models are not comparable"
        )
    docs = list(documents)
    if ids is None:
        ids = [d.id or document_id(d.metadata) for d in docs]
    elif len(ids) != len(docs):
        raise ValueError(f"got {len(ids)} ids for {len(docs)} documents")
    ids = list(ids)
    if not docs:
        return []
    vectors = embeddings.embed_media_documents(docs)
    texts = [d.page_content for d in docs]
    metadatas = [dict(d.metadata) or None for d in docs]
    collection = _chroma_collection(vectorstore)
    if collection is not None:
        # within the collection's write limits (Chroma Cloud's on a server)
        write_records(collection, ids, vectors, metadatas=metadatas, documents=texts)
    elif hasattr(vectorstore, "add_embeddings"):
        vectorstore.add_embeddings(
            text_embeddings=list(zip(texts, vectors, strict=True)),
            metadatas=[m or {} for m in metadatas],
            ids=ids,
        )
    else:
        raise TypeError(
            f"{type(vectorstore).__name__} takes no precomputed vectors; use "
            "GeminiEmbeddings.embed_media_documents and write them with the store's own API"
        )
    return ids


def _chroma_collection(vectorstore: VectorStore) -> Any:
    try:
        from langchain_chroma import Chroma
    except ImportError:  # pragma: no cover - langchain-chroma is optional
        return None
    if isinstance(vectorstore, Chroma):
        return vectorstore._collection  # the collection Chroma.add_images writes to as well
    return None
