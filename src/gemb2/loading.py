"""Files to Items: walk folders, split each file to fit the model's limits, and
label every piece with where it came from. Shared by the CLI and every wrapper's loader."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import probe, segment
from .errors import InputError, MediaReadError
from .media import Item, Media
from .models import Limits, get_model

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
) -> list[Item]:
    """One Item per piece that fits the limits. Metadata: ``source``, ``file_hash``,
    ``modality``, ``mime_type``, ``piece``, ``pieces`` and the piece's page, time or
    character range when split."""
    p = Path(path)
    limits = limits or get_model("gemini-embedding-2").limits
    probe.check_regular_file(p)
    if digest is None:
        try:
            digest = file_hash(p)
        except OSError as exc:
            raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=str(p)) from exc
    pieces = list(
        segment.segment_file(
            p, limits, overlap_seconds=overlap_seconds, use_video_audio=use_video_audio
        )
    )
    items = []
    for seg in pieces:
        meta: dict[str, Any] = {
            k: v
            for k, v in seg.metadata().items()
            if v is not None and k not in ("source", "count")
        }
        meta.update(
            source=str(p),
            file_hash=digest,
            modality=seg.modality,
            mime_type=seg.mime_type,
            piece=seg.index,
            pieces=len(pieces),
        )
        if seg.text is not None:
            items.append(Item(parts=(seg.text,), metadata=meta))
        else:
            assert seg.data is not None
            media = Media.from_bytes(seg.data, seg.mime_type, name=piece_name(p, meta))
            items.append(Item(parts=(media,), metadata=meta))
    return items


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
