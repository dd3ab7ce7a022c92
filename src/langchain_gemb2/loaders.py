"""A LangChain document loader for folders of mixed media: text, images, audio, video, PDFs.

Splitting is the core's (``gemb2.ingest.loading.load_file``): a long PDF becomes 6-page
pieces, long audio and video overlapping segments, long text token-bounded chunks.
Each piece becomes one ``Document`` whose metadata says where it came from, so a
hit from a text query points at the file and the page or time range.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from gemb2.errors import InputError
from gemb2.model.catalog import Limits

if TYPE_CHECKING:
    from .embeddings import GeminiEmbeddings

log = logging.getLogger("gemb2")

PathLike = str | os.PathLike[str]


class MixedMediaLoader(BaseLoader):
    """Files and folders (walked recursively) to one ``Document`` per embeddable piece.

    Text pieces carry their text as ``page_content``; media pieces carry a label
    (``"[audio] talk.mp3 0.0-80.0 s"``, as the CLI stores it) and are embedded as media by
    ``GeminiEmbeddings.embed_media_documents`` or ``add_media_documents``.
    Metadata: ``source``, ``file_hash``, ``modality``, ``mime_type``, ``piece``,
    ``pieces`` and, for split files, ``page_start``/``page_end`` (1-based,
    inclusive), ``start_seconds``/``end_seconds`` or ``char_start``/``char_end``.

    Pass ``embeddings`` so the pieces are cut to the same limits it embeds with.
    """

    def __init__(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        embeddings: GeminiEmbeddings | None = None,
        limits: Limits | None = None,
        use_video_audio: bool = False,
        silent_errors: bool = False,
    ) -> None:
        self.paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if embeddings is not None:
            settings = embeddings.embedder.settings
            limits = limits or settings.resolved_limits
            use_video_audio = settings.use_video_audio
        self.limits = limits
        self.use_video_audio = use_video_audio
        self.silent_errors = silent_errors

    def lazy_load(self) -> Iterator[Document]:
        """One file at a time, so a large folder never sits in memory whole."""
        # PDF/AV splitters load only when used
        from gemb2.ingest.loading import load_file, walk
        from gemb2.ingest.pieces import describe

        for path in walk(self.paths):
            try:
                items = load_file(path, self.limits, use_video_audio=self.use_video_audio)
            except InputError as exc:
                if not self.silent_errors:
                    raise
                log.warning("skipping %s: %s", path, exc)
                continue
            for item in items:
                meta = dict(item.metadata)
                yield Document(page_content=describe(item), metadata=meta, id=document_id(meta))


def document_id(meta: dict[str, object]) -> str:
    """Stable per file content, path and piece: loading again overwrites, never duplicates."""
    key = f"{meta.get('source')}\0{meta.get('file_hash')}\0{meta.get('piece')}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
