"""One file in, pieces that fit out: sniff its type and hand it to its format's splitter.

The single entry point the loaders use (``segment_file``): it knows which splitter
each type goes to and which limit applies, and refuses what the model does not accept
with the list of what it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gemb2.errors import InputError, MediaReadError, UnsupportedMediaError
from gemb2.inputs import probe
from gemb2.model.catalog import Limits
from gemb2.segment.av_scan import _AV_FAMILY, _head, _keep, _read_whole, _scan
from gemb2.segment.av_split import _check_overlap, _split_scanned
from gemb2.segment.image import fit_image, shrink_image
from gemb2.segment.pdf import split_pdf
from gemb2.segment.record import Segment, _supported_list
from gemb2.segment.text import text_segments

__all__ = ["segment_file"]


def segment_file(
    path: str | Path,
    limits: Limits,
    *,
    overlap_seconds: float = 2.0,
    use_video_audio: bool = False,
) -> list[Segment] | Iterator[Segment]:
    """Pieces of one file that each fit ``limits``; the type is sniffed from content.

    Plain UTF-8 text is recognised by its extension (``.txt``, ``.md``, ...). Audio
    and video over their limit come back as a lazy iterator (see ``split_media``);
    everything else as a list. A file that fits is one piece holding all of it.
    """
    path = Path(path)
    name = str(path)
    head = _head(path, name)
    if not head:
        raise MediaReadError("file is empty", source=name)
    mime = probe.sniff_mime(head)
    if mime is None and path.suffix.lower() in probe.TEXT_SUFFIXES:
        data = probe.read_file(path, name)
        if probe.looks_like_text(data):
            return _segment_text(data, name, limits)
        raise UnsupportedMediaError(
            "named like a text file but is not UTF-8 text (re-save it as UTF-8)",
            source=name,
            limit=f"supported: {_supported_list()}",
        )
    modality = probe.modality_of(mime) if mime else None
    if mime is None or modality is None:
        detected = mime or ("text/plain" if probe.looks_like_text(head) else "unknown binary data")
        hint = ""
        if detected == "text/plain":
            hint = f" (text is read from files named {', '.join(sorted(probe.TEXT_SUFFIXES))})"
        raise UnsupportedMediaError(
            f"unsupported file type: content is {detected}{hint}",
            source=name,
            limit=f"supported: {_supported_list()}",
        )
    if modality == "pdf":
        data = probe.read_file(path, name)
        return split_pdf(data, max_pages=limits.max_pdf_pages, name=name)
    if modality == "image":
        data = probe.read_file(path, name)
        budget = limits.max_image_pixels
        if mime in ("image/png", "image/jpeg", "image/webp"):
            data = fit_image(data, max_pixels=budget, name=name)
        if len(data) > limits.max_inline_bytes:
            data = shrink_image(
                data, max_bytes=limits.max_inline_bytes, name=name, max_pixels=budget
            )
        return [Segment(data, None, mime, "image", name, 0, 1)]
    if mime not in _AV_FAMILY:  # e.g. an AV type probe knows but we cannot cut
        data = probe.read_file(path, name)
        return [Segment(data, None, mime, modality, name, 0, 1)]
    scan = _scan(path, name, mime)
    if modality == "audio":
        max_s = limits.max_audio_seconds
        use_audio = True
    else:
        max_s = limits.max_video_seconds
        use_audio = use_video_audio
        if use_video_audio and scan.audio is not None:
            max_s = min(max_s, limits.max_video_with_audio_seconds)
    # measured from the packets (a header can lie), the header's if they agree
    duration = probe.real_seconds(scan.full_duration, scan.declared)
    if duration > max_s:
        _check_overlap(max_s, overlap_seconds)
        return _split_scanned(path, name, _keep(scan, use_audio), max_s, overlap_seconds)
    return [
        Segment(
            _read_whole(path, name, scan.patch),
            None,
            mime,
            modality,
            name,
            0,
            1,
            start_seconds=0.0,
            end_seconds=round(duration, 6),
        )
    ]


def _segment_text(data: bytes, name: str, limits: Limits) -> list[Segment]:
    text = data.decode("utf-8-sig")
    if not text.strip():
        raise InputError("text file is empty", source=name)
    return text_segments(text, name, limits.max_tokens)
