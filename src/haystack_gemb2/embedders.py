"""The embedders under their older module path; each lives in a module of its own now
(``text_embedder``, ``media_query_embedder``, ``document_embedder``)."""

from .document_embedder import GeminiDocumentEmbedder
from .media_query_embedder import GeminiMediaQueryEmbedder
from .text_embedder import GeminiTextEmbedder

__all__ = ["GeminiDocumentEmbedder", "GeminiMediaQueryEmbedder", "GeminiTextEmbedder"]
