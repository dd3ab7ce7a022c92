"""Splitting what is over the model's limits into pieces that fit, before any call.

Owns: PDF pages, text chunks on sentence breaks, image shrinking, audio/video cuts
(stream copy where the container allows, re-encoding where it must), and the
``Segment`` record each piece comes out as. Knows the limits it is given and the
media libraries (pypdf, PyAV, Pillow); knows nothing of the network, the engine,
stores or frameworks.

One module per format (``pdf``, ``text``, ``image``; audio/video in ``av_scan``, which
reads the container, and ``av_split``, which cuts it), the ``Segment`` record they all
return (``record``), and ``files``, which sniffs a file's type and picks the splitter.
"""

from gemb2.segment.av_split import split_media
from gemb2.segment.files import segment_file
from gemb2.segment.image import fit_image, shrink_image
from gemb2.segment.pdf import split_pdf
from gemb2.segment.record import Segment
from gemb2.segment.text import split_text, text_segments

__all__ = [
    "Segment",
    "fit_image",
    "segment_file",
    "shrink_image",
    "split_media",
    "split_pdf",
    "split_text",
    "text_segments",
]
