"""Getting one piece of a split file back from its metadata.

Frameworks store a piece as a record (a Document, a node) that holds only its
metadata; to embed it the piece's bytes must be found again. ``remember`` keeps the
pieces ``load_file`` just cut (bounded by bytes), and ``load_piece`` returns the piece
a record describes: from that store, else by cutting the file again, after checking
the file has not changed since it was split.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gemb2.errors import InputError, MediaReadError
from gemb2.ingest.loading import file_hash, label, load_file, source_path
from gemb2.inputs.media import Item
from gemb2.model.catalog import Limits

# Metadata load_file writes on every piece.
PIECE_KEYS = (
    "source",
    "source_escaped",
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
_RANGES = (("page_start", "page_end"), ("start_seconds", "end_seconds"), ("char_start", "char_end"))


def piece_key(meta: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Identity of a piece: its file's content hash and its range (or the whole file)."""
    digest = meta.get("file_hash")
    if not digest:
        return None
    for start, end in _RANGES:
        if start in meta and end in meta:
            return (digest, start, round(float(meta[start]), 3), round(float(meta[end]), 3))
    return (digest, "whole")


class PieceStore:
    """Bounded LRU of pieces by ``piece_key``; a miss is never an error (cut again)."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Any, ...], Item] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @staticmethod
    def _bytes(item: Item) -> int:
        return sum(m.size for m in item.media) + len(item.text)

    def put(self, key: tuple[Any, ...], item: Item) -> None:
        size = self._bytes(item)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._bytes(old)
            self._items[key] = item
            self._size += size
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= self._bytes(dropped)

    def get(self, key: tuple[Any, ...]) -> Item | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._items)


PIECES = PieceStore()
_hashes: dict[tuple[Any, ...], str] = {}


def remember(items: Sequence[Item]) -> None:
    """Keep freshly cut pieces for the embedding that usually follows in this process."""
    for item in items:
        key = piece_key(item.metadata)
        if key is not None:
            PIECES.put(key, item)


def check_unchanged(source: str, digest: str) -> None:
    """Refuse a record whose file changed since it was split (hashes cached by stat)."""
    try:
        st = os.stat(source)
    except FileNotFoundError as exc:
        raise MediaReadError("no such file", source=source) from exc
    except OSError as exc:
        raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=source) from exc
    stamp = (source, st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp not in _hashes:
        if len(_hashes) > 4096:
            _hashes.clear()
        _hashes[stamp] = file_hash(Path(source))
    if _hashes[stamp] != digest:
        raise InputError(
            "file changed since it was split; load or parse it again",
            source=source,
            limit=f"split content hash {digest[:12]}",
        )


def load_piece(
    meta: Mapping[str, Any],
    limits: Limits | None = None,
    *,
    use_video_audio: bool = False,
    overlap_seconds: float = 2.0,
) -> Item:
    """The piece ``meta`` (as written by ``load_file``) describes."""
    source = str(source_path(meta))
    digest = meta.get("file_hash")
    if digest:
        check_unchanged(source, str(digest))
    key = piece_key(meta)
    found = PIECES.get(key) if key is not None else None
    if found is not None:
        return found
    items = load_file(
        source,
        limits,
        use_video_audio=use_video_audio,
        overlap_seconds=overlap_seconds,
        digest=str(digest) if digest else None,
    )
    remember(items)
    if key is None and len(items) == 1:
        return items[0]
    for item in items:
        if piece_key(item.metadata) == key:
            return item
    raise InputError(
        f"no piece matches {label(meta)!r} when splitting the file again",
        source=source,
        limit="embed with the limits and overlap the file was split with",
    )
