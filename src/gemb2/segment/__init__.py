"""Splitting what is over the model's limits into pieces that fit, before any call.

Owns: PDF pages, text chunks on sentence breaks, image shrinking, audio/video cuts
(stream copy where the container allows, re-encoding where it must), and the
``Segment`` record each piece comes out as. Knows the limits it is given and the
media libraries (pypdf, PyAV, Pillow); knows nothing of the network, the engine,
stores or frameworks.
"""

from gemb2.segment.split import (
    Segment,
    fit_image,
    segment_file,
    shrink_image,
    split_media,
    split_pdf,
    split_text,
)

__all__ = [
    "Segment",
    "fit_image",
    "segment_file",
    "shrink_image",
    "split_media",
    "split_pdf",
    "split_text",
]
