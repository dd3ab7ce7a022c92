"""The record every piece of a split source comes out as, and the list of what is accepted.

Each format's splitter (pdf, text, image, audio/video) returns ``Segment`` objects, so
the loaders and wrappers read one shape whatever the input was: the bytes or text,
its type, and where in the source it came from (page, time or character range).
"""

from __future__ import annotations

from dataclasses import dataclass

from gemb2.inputs import probe

__all__ = ["Segment"]


@dataclass(frozen=True)
class Segment:
    """One piece of a source that fits the model's limits, with where it came from."""

    data: bytes | None
    text: str | None
    mime_type: str
    modality: str
    source: str
    index: int
    count: int | None
    page_start: int | None = None
    page_end: int | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    char_start: int | None = None
    char_end: int | None = None

    def metadata(self) -> dict[str, object]:
        """Flat, JSON-able: source, modality, mime type, index and whichever ranges are set."""
        meta: dict[str, object] = {
            "source": self.source,
            "modality": self.modality,
            "mime_type": self.mime_type,
            "index": self.index,
        }
        for key in (
            "count",
            "page_start",
            "page_end",
            "start_seconds",
            "end_seconds",
            "char_start",
            "char_end",
        ):
            value = getattr(self, key)
            if value is not None:
                meta[key] = value
        return meta


def _supported_list() -> str:
    return (
        ", ".join(sorted(probe.SUPPORTED_MIME))
        + ", text ("
        + ", ".join(sorted(probe.TEXT_SUFFIXES))
        + ")"
    )
