"""PDFs over the page limit, split into page ranges that are each a valid PDF.

Kept apart because it is the only place that knows pypdf; a damaged or encrypted file
raises ``MediaReadError`` naming it.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from gemb2.errors import MediaReadError
from gemb2.inputs import probe
from gemb2.segment.record import Segment

__all__ = ["split_pdf"]


def split_pdf(
    source: bytes | str | Path, *, max_pages: int = 6, name: str | None = None
) -> list[Segment]:
    """Split a PDF into pieces of at most ``max_pages`` pages, each a valid PDF.

    A PDF that already fits comes back as one piece holding the original bytes.
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    if isinstance(source, bytes):
        data, name = source, name or "<pdf>"
    else:
        name = name or str(source)
        data = probe.read_file(Path(source), name)

    from pypdf import PdfReader, PdfWriter

    # pypdf raises many exception types on damaged files (PdfReadError, KeyError,
    # ValueError, AttributeError, ...): any of them means the file is unreadable.
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise MediaReadError("PDF is encrypted", source=name)
        total = len(reader.pages)
        if total == 0:
            raise MediaReadError("PDF has no pages", source=name)
        if total <= max_pages:
            return [
                Segment(
                    data, None, "application/pdf", "pdf", name, 0, 1, page_start=1, page_end=total
                )
            ]
        count = math.ceil(total / max_pages)
        out: list[Segment] = []
        for index in range(count):
            first = index * max_pages
            last = min(first + max_pages, total)
            writer = PdfWriter()
            for page_no in range(first, last):
                writer.add_page(reader.pages[page_no])
            buf = io.BytesIO()
            writer.write(buf)
            out.append(
                Segment(
                    buf.getvalue(),
                    None,
                    "application/pdf",
                    "pdf",
                    name,
                    index,
                    count,
                    page_start=first + 1,
                    page_end=last,
                )
            )
        return out
    except MediaReadError:
        raise
    except Exception as exc:
        raise MediaReadError(f"cannot read PDF: {exc}", source=name) from exc
