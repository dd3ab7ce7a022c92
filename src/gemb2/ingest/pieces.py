"""A piece of a split file: what it carries, how it is described, getting it back.

Every loader (``load_file`` for the CLI and LangChain, LlamaIndex's node parser) and
every store writes a piece with the same metadata (``PIECE_KEYS``) and the same stored
text (``describe``: the text, or a label for media), so a record made by one is read
by the others. ``text_limits`` is the one budget for the text a framework adds to a
piece when it embeds it (LlamaIndex puts the node's metadata in front).

Frameworks store a piece as a record (a Document, a node) that holds only its
metadata; to embed it the piece's bytes must be found again. ``remember`` keeps the
pieces ``load_file`` just cut (bounded by bytes), and ``load_piece`` returns the piece
a record describes: from that store, else by cutting the file again, after checking
the file has not changed since it was split. ``pdf_page`` cuts the one page a record
names (Haystack's PDF converters put ``page_number`` on each page's Document).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gemb2.errors import InputError, MediaReadError
from gemb2.ingest.loading import file_hash, load_file, piece_meta, source_path
from gemb2.inputs.detect import content_hash
from gemb2.inputs.media import Item, Media
from gemb2.inputs.tokens import estimate_tokens
from gemb2.model.catalog import Limits
from gemb2.model.tasks import PREFIX_TOKENS
from gemb2.segment import split_pdf, text_segments

# -- the schema -----------------------------------------------------------------------

# Metadata load_file writes on every piece (and no other key).
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
# Keys that are bookkeeping, not something a reader (an LLM) learns from.
BOOKKEEPING_KEYS = ("file_hash", "mime_type", "piece", "pieces", "char_start", "char_end")
_IDENTITY = ("source", "file_hash", "modality", "piece")
_RANGES = (("page_start", "page_end"), ("start_seconds", "end_seconds"), ("char_start", "char_end"))


def is_piece(meta: Mapping[str, Any]) -> bool:
    """Whether a record's metadata describes a piece (of a file, a text or held media)."""
    return all(meta.get(k) is not None for k in _IDENTITY)


def label(meta: Mapping[str, Any]) -> str:
    """The text stored with a media piece (vector stores and LLMs see it, the embedding
    does not): its modality, file and range, e.g. ``[pdf] report.pdf pages 7-12``."""
    name = Path(str(meta.get("source", "media"))).name
    text = f"[{meta.get('modality', 'media')}] {name}"
    if "page_start" in meta:
        text += f" pages {meta['page_start']}-{meta['page_end']}"
    if "start_seconds" in meta:
        text += f" {float(meta['start_seconds']):.1f}-{float(meta['end_seconds']):.1f} s"
    return text


def describe(item: Item) -> str:
    """The text a store keeps for a piece: its text, or its label for media."""
    return item.text if item.is_text_only else label(item.metadata)


def text_limits(limits: Limits, *, added_text: str = "", chunk_tokens: int | None = None) -> Limits:
    """``limits`` for cutting text whose pieces a framework embeds with ``added_text``
    in front (LlamaIndex: a node's EMBED-mode metadata), each at most ``chunk_tokens``.

    Pieces cut with them (``load_file``, ``text_pieces``) hold at most
    ``max_tokens - PREFIX_TOKENS`` tokens: room for the task prefix is left by the
    cutting, so the budget here is the model's limit less the added text, capped at
    ``chunk_tokens`` plus that room."""
    room = limits.max_tokens - PREFIX_TOKENS - estimate_tokens(added_text)
    budget = max(1, min(chunk_tokens or room, room))
    return limits.model_copy(update={"max_tokens": budget + PREFIX_TOKENS})


def text_pieces(text: str, limits: Limits, *, source: str) -> list[Item]:
    """Text held in memory as the pieces ``load_file`` cuts from a text file: at most
    ``limits.max_tokens - PREFIX_TOKENS`` tokens each, with the same metadata (the
    ``file_hash`` is the text's); [] for blank text."""
    if not text.strip():
        return []
    cut = text_segments(text, source, limits.max_tokens)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return [
        Item(parts=(seg.text or "",), metadata=piece_meta(source, seg, digest, len(cut)))
        for seg in cut
    ]


def media_meta(media: Sequence[Media]) -> dict[str, Any]:
    """The metadata of media held in memory or at a URL, as one piece keyed by its
    content hash (interleaved when there are several)."""
    first = media[0]
    return {
        "source": first.uri or first.name,
        "file_hash": content_hash(media),
        "modality": first.modality if len(media) == 1 else "interleaved",
        "mime_type": first.mime_type,
        "piece": 0,
        "pieces": 1,
    }


def piece_key(meta: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Identity of a piece: its file's content hash and its range (or the whole file)."""
    digest = meta.get("file_hash")
    if not digest:
        return None
    for start, end in _RANGES:
        if start in meta and end in meta:
            return (digest, start, round(float(meta[start]), 3), round(float(meta[end]), 3))
    return (digest, "whole")


# -- getting a piece back -------------------------------------------------------------


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


# -- one page a record names ----------------------------------------------------------

# Each PDF's pages (as one-page PDFs) by its digest: a run naming many pages of one PDF
# splits it once.
PdfPages = dict[str, list[bytes]]


def pdf_page(
    media: Media,
    page: object,
    *,
    pages: PdfPages | None = None,
    source: str | None = None,
    field: str = "page_number",
) -> Media:
    """Page ``page`` (1-based) of the PDF ``media`` as a PDF of its own, its range in
    metadata as for any piece (``page_start`` = ``page_end`` = ``page``).

    ``pages`` keeps the pages of each PDF seen in a run; ``field`` names the value in
    errors (where the caller read ``page`` from). A page that is not an integer >= 1,
    or past the PDF's last page, raises ``InputError`` before any call."""
    where = source or media.name
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InputError(f"{field} must be an integer >= 1, got {page!r}", source=where)
    if media.modality != "pdf":
        raise InputError(f"{field} names a page, but the media is {media.mime_type}", source=where)
    cache = {} if pages is None else pages
    if media.digest not in cache:
        cut = split_pdf(media.read() or b"", max_pages=1, name=media.name)
        cache[media.digest] = [p.data or b"" for p in cut]
    found = cache[media.digest]
    if page > len(found):
        raise InputError(
            f"{field} is {page} but the PDF has {len(found)} pages",
            source=f"{where} ({media.name})",
        )
    return Media.from_bytes(
        found[page - 1],
        "application/pdf",
        name=f"{media.name} (page {page})",
        metadata={**media.metadata, "page_start": page, "page_end": page},
    )
