"""Gemini Embedding 2 embedders at Haystack's integration path, which ``Pipeline.loads``
imports without extending its deserialisation allowlist."""

from haystack_gemb2.document_embedder import GeminiDocumentEmbedder
from haystack_gemb2.media_query_embedder import GeminiMediaQueryEmbedder
from haystack_gemb2.text_embedder import GeminiTextEmbedder

__all__ = ["GeminiDocumentEmbedder", "GeminiMediaQueryEmbedder", "GeminiTextEmbedder"]
