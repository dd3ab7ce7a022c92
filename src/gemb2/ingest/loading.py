"""Files to Items: walk folders, split each file to fit the model's limits, and
label every piece with where it came from. Shared by the CLI and every wrapper's loader."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gemb2.segment as segment
from gemb2.errors import InputError, MediaReadError
from gemb2.inputs import probe
from gemb2.inputs.media import Item, Media
from gemb2.model.catalog import Limits, get_model

log = logging.getLogger("gemb2")

SKIP_DIRS = frozenset({".git", "__pycache__", ".venv", "node_modules"})


def walk(
    paths: Iterable[str | os.PathLike[str]],
    *,
    on_skip: Callable[[str, str], None] | None = None,
) -> Iterator[Path]:
    """Files under the given paths, sorted, without following symlinked folders (no loops).

    Inside a folder, FIFOs, sockets and devices (reading them would block) and symlinks
    that resolve outside the folder are not yielded but reported to ``on_skip(path,
    reason)`` (or logged): indexing a folder never reads what lies outside it. A path
    named explicitly is used as given."""
    for root in paths:
        p = Path(root)
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            raise InputError("no such file or directory", source=str(p)) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", source=str(p)) from None
        if not stat.S_ISDIR(mode):
            if not stat.S_ISREG(mode):
                raise InputError(_NOT_REGULAR, source=str(p))
            yield p
            continue
        top = p.resolve()
        for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
            )
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                reason = _refused(path, top)
                if reason is None:
                    yield path
                elif on_skip is not None:
                    on_skip(str(path), reason)
                else:
                    log.warning("skipped %s: %s", path, reason)


_NOT_REGULAR = "not a regular file (a FIFO, socket or device)"


def _refused(path: Path, top: Path) -> str | None:
    """Why a file found in a folder must not be read, or None (unreadable files pass:
    reading them reports why)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not stat.S_ISREG(mode):
        return _NOT_REGULAR
    if path.is_symlink() and not path.resolve().is_relative_to(top):
        return f"symlink points outside {top}; name its target to index it"
    return None


def source_name(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """The ``source`` a piece records for ``path``, and whether it is escaped.

    A name that is not valid UTF-8 (legal on Linux: Python holds its bad bytes as lone
    surrogates, which Chroma, JSON and most stores refuse) is written with each such
    byte as ``\\xNN`` and each backslash doubled, e.g. ``bad\\xffname.png``, and the
    piece gets ``source_escaped=True``; ``source_path`` turns it back into the real path.
    Every other name is ``str(path)``, unchanged."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return text, False
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape holds it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # not from a file name (only Windows makes these)
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out), True


def source_path(meta: Mapping[str, Any]) -> Path:
    """The real path of a piece's ``source`` (undoing ``source_name``'s escaping)."""
    source = str(meta["source"])
    if not meta.get("source_escaped"):
        return Path(source)
    raw = bytearray()
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\" and source[i + 1 : i + 2] == "\\":
            raw += b"\\"
            i += 2
        elif ch == "\\" and source[i + 1 : i + 2] == "x":
            raw.append(int(source[i + 2 : i + 4], 16))
            i += 4
        elif ch == "\\" and source[i + 1 : i + 2] == "u":
            raw += chr(int(source[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
            i += 6
        else:
            raw += ch.encode("utf-8")
            i += 1
    return Path(os.fsdecode(bytes(raw)))


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_file(
    path: str | os.PathLike[str],
    limits: Limits | None = None,
    *,
    use_video_audio: bool = False,
    overlap_seconds: float = 2.0,
    digest: str | None = None,
    defer: bool = False,
) -> list[Item]:
    """One Item per piece that fits the limits. Metadata: ``source``, ``file_hash``,
    ``modality``, ``mime_type``, ``piece``, ``pieces`` and the piece's page, time or
    character range when split.

    ``defer=True`` keeps no media bytes in memory: the pieces of a split file go to an
    anonymous temporary file as they are cut (one piece in memory at a time) and a file
    that is one piece is read again from its path; either is read only when its call is
    sent (``Media.deferred``). The indexer uses it, so a long video costs no more memory
    than the pieces in flight."""
    p = Path(path)
    limits = limits or get_model("gemini-embedding-2").limits
    probe.check_regular_file(p)
    if digest is None:
        try:
            digest = file_hash(p)
        except OSError as exc:
            raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=str(p)) from exc
    cut = segment.segment_file(
        p, limits, overlap_seconds=overlap_seconds, use_video_audio=use_video_audio
    )
    if defer:
        return _deferred_items(p, cut, digest)
    pieces = list(cut)
    items = []
    for seg in pieces:
        meta = piece_meta(p, seg, digest, len(pieces))
        if seg.text is not None:
            items.append(Item(parts=(seg.text,), metadata=meta))
        else:
            assert seg.data is not None
            media = Media.from_bytes(seg.data, seg.mime_type, name=piece_name(p, meta))
            items.append(Item(parts=(media,), metadata=meta))
    return items


def piece_meta(
    path: str | os.PathLike[str], seg: segment.Segment, digest: str, count: int
) -> dict[str, Any]:
    """A piece's metadata (``gemb2.ingest.pieces.PIECE_KEYS``): where it came from, its
    content hash, its type, its place among ``count`` pieces and its range."""
    meta: dict[str, Any] = {
        k: v
        for k, v in seg.metadata().items()
        if v is not None and k not in ("source", "count", "index")  # index: as ``piece``
    }
    source, escaped = source_name(path)
    meta.update(
        source=source,
        file_hash=digest,
        modality=seg.modality,
        mime_type=seg.mime_type,
        piece=seg.index,
        pieces=count,
    )
    if escaped:
        meta["source_escaped"] = True
    return meta


class _Spool:
    """An anonymous temporary file the pieces of one split file are appended to; read
    back by offset (``os.pread``: safe from any thread). Closed when no piece needs it."""

    def __init__(self) -> None:
        # lives as long as the pieces that read from it (closed when collected)
        self.file = tempfile.TemporaryFile(prefix="gemb2-pieces-")  # noqa: SIM115
        self.size = 0
        self._lock = threading.Lock()

    def append(self, data: bytes) -> tuple[int, int]:
        with self._lock:
            offset = self.size
            self.file.seek(offset)
            self.file.write(data)
            self.file.flush()
            self.size += len(data)
        return offset, len(data)

    def __del__(self) -> None:
        self.file.close()

    def reader(self, offset: int, length: int) -> Any:
        def read() -> bytes:
            return os.pread(self.file.fileno(), length, offset)

        return read


def _read_path(path: Path) -> Any:
    return lambda: probe.read_file(path)


def _deferred_items(path: Path, cut: Any, digest: str) -> list[Item]:
    """``load_file(defer=True)``: pieces as deferred media, cut one at a time."""
    spool: _Spool | None = None
    items: list[Item] = []
    metas: list[dict[str, Any]] = []
    for seg in cut:
        # every splitter plans its pieces first, so the count is known as they come
        meta = piece_meta(path, seg, digest, seg.count if seg.count is not None else 1)
        metas.append(meta)
        if seg.text is not None:
            items.append(Item(parts=(seg.text,), metadata=meta))
            continue
        assert seg.data is not None
        name = piece_name(path, meta)
        mime = Media.from_bytes(seg.data, seg.mime_type, name=name).mime_type  # sniff, check
        if meta["pieces"] == 1 and _is_whole_file(path, seg.data, digest):
            loader = _read_path(path)
        else:
            spool = spool or _Spool()
            loader = spool.reader(*spool.append(seg.data))
        media = Media.deferred(mime, loader, len(seg.data), name=name)
        items.append(Item(parts=(media,), metadata=meta))
    for meta in metas:  # as load_file: the number of pieces actually cut
        meta["pieces"] = len(metas)
    return items


def _is_whole_file(path: Path, data: bytes, digest: str) -> bool:
    """A piece that is the whole file, byte for byte (so it can be read again from there):
    the same size is not enough, a WAV piece may be the file with its header repaired."""
    try:
        if path.stat().st_size != len(data):
            return False
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == digest


def piece_name(path: Path, meta: dict[str, Any]) -> str:
    """The file, plus the page or time range when it is one piece of several."""
    if meta.get("pieces", 1) == 1:
        return str(path)
    if "page_start" in meta:
        return f"{path} (pages {meta['page_start']}-{meta['page_end']})"
    if "start_seconds" in meta:
        return f"{path} ({meta['start_seconds']:.1f}-{meta['end_seconds']:.1f} s)"
    if "char_start" in meta:
        return f"{path} (chars {meta['char_start']}-{meta['char_end']})"
    return f"{path} (piece {meta.get('piece')})"
