"""LlamaIndex nodes to gemb2 Items, and back to labels.

LlamaIndex embeds ``node.get_content()`` text, which is empty for media. This module
finds the media a node really holds (an ``ImageNode``'s image, a ``Node``'s image,
audio or video resource, or a media file named in its metadata) so the embedding
sends the media itself. Pieces of split files are kept in a small in-process store
so the embedding does not split a file the parser has just split.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    TextNode,
)

from gemb2 import InputError, Item, Limits, Media, MediaReadError
from gemb2.loading import file_hash, label, load_file
from gemb2.media import mime_from_suffix
from gemb2.probe import modality_of

MEDIA_MODALITIES = frozenset({"image", "audio", "video", "pdf"})
# Metadata the core writes on every piece; kept out of the text an embedding or LLM sees.
PIECE_KEYS = (
    "source",
    "file_hash",
    "modality",
    "mime_type",
    "piece",
    "pieces",
    "page_start",
    "page_end",
    "start_seconds",
    "end_seconds",
    "char_start",
    "char_end",
)
LLM_HIDDEN_KEYS = ("file_hash", "mime_type", "piece", "pieces", "char_start", "char_end")
_RANGES = (("page_start", "page_end"), ("start_seconds", "end_seconds"))


def piece_key(meta: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Identity of a piece of a parsed file: its content hash and its range."""
    digest = meta.get("file_hash")
    if not digest:
        return None
    for start, end in _RANGES:
        if start in meta and end in meta:
            return (digest, start, round(float(meta[start]), 3), round(float(meta[end]), 3))
    return (digest, "whole")


class PieceStore:
    """Bounded LRU of piece bytes by (file hash, range); shared by parser and embedding
    in one process. A miss is never an error: the embedding cuts the piece again."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Any, ...], Media] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def put(self, key: tuple[Any, ...], media: Media) -> None:
        if media.size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old.size
            self._items[key] = media
            self._size += media.size
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= dropped.size

    def get(self, key: tuple[Any, ...]) -> Media | None:
        with self._lock:
            media = self._items.get(key)
            if media is not None:
                self._items.move_to_end(key)
            return media

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._items)


PIECES = PieceStore()


def remember(items: Sequence[Item]) -> None:
    """Keep the media of split pieces for the embedding that follows the parser."""
    for item in items:
        key = piece_key(item.metadata)
        if key is not None and item.media:
            PIECES.put(key, item.media[0])


def own_text(node: BaseNode) -> str:
    """The node's own text, without metadata."""
    if isinstance(node, Node):
        return (node.text_resource.text or "") if node.text_resource else ""
    if isinstance(node, TextNode):
        return node.text
    return node.get_content(metadata_mode=MetadataMode.NONE)


def _from_resource(res: MediaResource, name: str) -> Media:
    if res.data is not None:
        return Media.from_bytes(base64.b64decode(res.data), res.mimetype, name=name)
    if res.path is not None:
        return Media.from_path(res.path)
    if res.url is not None:
        return Media.from_url(str(res.url), res.mimetype)
    raise InputError("media resource holds no data, path or url", source=name)


def is_piece(meta: Mapping[str, Any]) -> bool:
    """Whether metadata is that of a piece GeminiMediaNodeParser made."""
    return all(meta.get(k) is not None for k in ("source", "file_hash", "modality", "piece"))


def is_media_file(path: str) -> bool:
    mime = mime_from_suffix(path)
    return mime is not None and modality_of(mime) in MEDIA_MODALITIES


class Resolver:
    """Turns nodes into Items; splits a file again only when a piece is not in the store."""

    def __init__(
        self,
        limits: Limits,
        *,
        use_video_audio: bool = False,
        overlap_seconds: float = 2.0,
        interleave_text: bool = False,
    ) -> None:
        self.limits = limits
        self.use_video_audio = use_video_audio
        self.overlap_seconds = overlap_seconds
        self.interleave_text = interleave_text
        self._hashes: dict[tuple[Any, ...], str] = {}

    def item(self, node: BaseNode) -> Item | str:
        """Media nodes become media Items; text nodes their EMBED-mode text."""
        media = self.media(node)
        if not media:
            return node.get_content(metadata_mode=MetadataMode.EMBED)
        text = own_text(node).strip()
        caption = text and text != label(node.metadata) and self.interleave_text
        parts: tuple[str | Media, ...] = (text, *media) if caption else tuple(media)
        return Item(parts=parts, metadata={"source": media[0].name})

    def media(self, node: BaseNode) -> list[Media]:
        """The media a node holds, or [] for a text node."""
        meta = node.metadata
        if is_piece(meta) and meta.get("modality") in MEDIA_MODALITIES and _is_file(node):
            return [self._piece(meta)]
        name = str(meta.get("source") or meta.get("file_path") or node.node_id)
        if isinstance(node, ImageNode):
            if node.image:
                data = base64.b64decode(node.image)
                return [Media.from_bytes(data, node.image_mimetype, name=name)]
            if node.image_path:
                return [Media.from_path(node.image_path)]
            if node.image_url:
                return [Media.from_url(node.image_url, node.image_mimetype)]
        if isinstance(node, Node):
            resources = (node.image_resource, node.audio_resource, node.video_resource)
            found = [_from_resource(r, name) for r in resources if r is not None]
            if found:
                return found
        file_path = meta.get("file_path")
        if file_path and is_media_file(str(file_path)):
            text = own_text(node).strip()
            if not text or text == label({"source": file_path, "modality": meta.get("modality")}):
                return [Media.from_path(str(file_path))]  # a reader's media Document
        return []

    def _unchanged(self, source: str, meta: Mapping[str, Any]) -> None:
        """A parsed node must still describe its file: refuse one whose file changed."""
        digest = meta.get("file_hash")
        if not digest:
            return
        try:
            st = os.stat(source)
        except FileNotFoundError as exc:
            raise MediaReadError("no such file", source=source) from exc
        except OSError as exc:
            raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=source) from exc
        stamp = (source, st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp not in self._hashes:
            if len(self._hashes) > 4096:
                self._hashes.clear()
            self._hashes[stamp] = file_hash(Path(source))
        if self._hashes[stamp] != digest:
            raise InputError(
                "file changed since it was parsed; parse it again",
                source=source,
                limit=f"parsed content hash {str(digest)[:12]}",
            )

    def _piece(self, meta: Mapping[str, Any]) -> Media:
        """A parsed piece: the whole file, else from the store, else cut again."""
        source = str(meta["source"])
        self._unchanged(source, meta)
        whole = int(meta.get("pieces", 1)) <= 1
        if whole and os.path.getsize(source) <= self.limits.max_inline_bytes:
            return Media.from_path(source)
        key = piece_key(meta)
        cached = PIECES.get(key) if key is not None else None
        if cached is not None:
            return cached
        items = load_file(
            source,
            self.limits,
            use_video_audio=self.use_video_audio,
            overlap_seconds=self.overlap_seconds,
        )
        remember(items)
        for item in items:
            if piece_key(item.metadata) == key and item.media:
                return item.media[0]
        raise InputError(
            f"cannot find piece {label(meta)!r} when splitting the file again",
            source=source,
            limit="embed with the limits and overlap the parser used",
        )


def _is_file(node: BaseNode) -> bool:
    """Whether a node with our metadata stands for a file (not bytes or a URL the
    parser passed through); a missing file is then an error, never a text fallback."""
    if isinstance(node, ImageNode) and (node.image or node.image_url):
        return False
    if isinstance(node, Node):
        resources = (node.image_resource, node.audio_resource, node.video_resource)
        if any(r is not None and r.path is None for r in resources):
            return False
    return True
