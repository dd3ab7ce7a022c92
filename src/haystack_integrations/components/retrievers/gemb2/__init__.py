"""The Matryoshka shortlist-and-rerank retriever at Haystack's integration path, which
``Pipeline.loads`` imports without extending its deserialisation allowlist."""

from haystack_gemb2.retriever import GeminiMatryoshkaRetriever

__all__ = ["GeminiMatryoshkaRetriever"]
