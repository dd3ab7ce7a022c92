"""A LlamaIndex reader that makes one Document per file, ready for GeminiMediaNodeParser.

Media Documents carry a label as text and the file's content hash in metadata:
IngestionPipeline keys its cache on ``get_content(metadata_mode=ALL)``, which for a
Document without text is ``""`` (its metadata is left out); with a label it holds
the metadata, hash included, so neither another file nor an edited file at the same
path is served a cached result that is not its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from gemb2 import Item
from gemb2.errors import InputError
from gemb2.ingest.loading import file_hash, walk
from gemb2.ingest.pieces import label
from gemb2.inputs.detect import sniff_file
from gemb2.inputs.probe import TEXT_SUFFIXES, modality_of

log = logging.getLogger("gemb2.llamaindex")

PathLike = Union[str, "os.PathLike[str]"]
_EMBED_HIDDEN = ["file_name", "file_hash", "modality", "mime_type"]
_LLM_HIDDEN = ["file_hash", "mime_type"]


class GeminiMediaReader(BaseReader):
    """One Document per file under the given files or folders: text files with their
    text, media files (PNG, JPEG, WebP, HEIC, MP3, WAV, MP4, MOV, PDF) with a label.
    Metadata: ``file_path``, ``file_name``, ``file_hash``, ``modality``, ``mime_type``.
    Files of other types are skipped with a warning.

    Works alone (``GeminiMediaReader().load_data("folder")``) or as a
    ``SimpleDirectoryReader`` ``file_extractor`` for media suffixes.
    """

    def lazy_load_data(
        self,
        file: PathLike | Sequence[PathLike],
        extra_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Iterator[Document]:
        paths = [file] if isinstance(file, (str, os.PathLike)) else list(file)
        for path in walk(paths):
            doc = self._document(path, extra_info or {})
            if doc is not None:
                yield doc

    def load_data(
        self,
        file: PathLike | Sequence[PathLike],
        extra_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return list(self.lazy_load_data(file, extra_info, **kwargs))

    def _document(self, path: Path, extra: dict[str, Any]) -> Document | None:
        mime = sniff_file(path)
        modality = modality_of(mime) if mime else None
        meta = {**extra, "file_path": str(path), "file_name": path.name}
        if modality is None:
            if path.suffix.lower() not in TEXT_SUFFIXES:
                log.warning("skipping %s: not a type Gemini Embedding 2 accepts", path)
                return None
            try:
                text = Item.from_path(path).text
            except InputError as exc:
                log.warning("skipping %s: %s", path, exc.reason)
                return None
            if not text.strip():
                log.warning("skipping %s: text file is empty", path)
                return None
            meta.update(file_hash=file_hash(path), modality="text", mime_type="text/plain")
        else:
            meta.update(file_hash=file_hash(path), modality=modality, mime_type=mime)
            text = label({"source": str(path), "modality": modality})
        return Document(
            text=text,
            metadata=meta,
            excluded_embed_metadata_keys=list(_EMBED_HIDDEN),
            excluded_llm_metadata_keys=list(_LLM_HIDDEN),
        )
