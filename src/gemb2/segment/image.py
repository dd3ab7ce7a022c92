"""Images checked within a pixel budget and, when too large to send, re-encoded smaller.

Kept apart because it is the only splitter that knows Pillow; images are not cut into
pieces but made to fit, keeping their format and the text they carry.
"""

from __future__ import annotations

import io
import math
from typing import Any

from gemb2.errors import LimitExceededError
from gemb2.inputs import probe
from gemb2.model.catalog import DEFAULT_MAX_IMAGE_PIXELS

__all__ = ["fit_image", "shrink_image"]


_PIL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def fit_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, name: str | None = None
) -> bytes:
    """The image checked by decoding it within ``max_pixels`` (``probe.decode_image``).

    One that fits comes back as the same bytes. A baseline JPEG over the budget comes back
    as the reduced image libjpeg decoded it to (1/2 to 1/8 scale, within the budget),
    re-encoded as JPEG with its EXIF, ICC profile and comment; any other image over the
    budget is refused (``MediaReadError`` naming it, its pixels and the budget)."""
    name = name or "<image>"
    img, (width, height) = probe.decode_image(data, name, max_pixels)
    try:
        if width * height <= max_pixels:
            return data
        keep = {k: img.info[k] for k in ("exif", "icc_profile", "comment") if img.info.get(k)}
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90, **keep)
        return buf.getvalue()
    finally:
        img.close()


def shrink_image(
    data: bytes,
    *,
    max_bytes: int,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> bytes:
    """Re-encode and downscale an image until it is at most ``max_bytes``.

    Keeps PNG, JPEG and WebP in their format and keeps the text it carries (PNG text
    chunks, EXIF), since that text can matter to whoever reads the image. JPEG and WebP
    first step down in quality. It is decoded within ``max_pixels`` (see ``fit_image``).
    """
    if len(data) <= max_bytes:
        return data
    name = name or "<image>"
    from PIL import Image, PngImagePlugin

    img: Image.Image
    img, _ = probe.decode_image(data, name, max_pixels)
    fmt = img.format if img.format in _PIL_FORMATS else "PNG"
    exif = img.info.get("exif")
    icc = img.info.get("icc_profile")
    pnginfo = PngImagePlugin.PngInfo()
    for key, value in getattr(img, "text", {}).items():
        pnginfo.add_text(key, value)
    if img.mode in ("P", "1", "LA", "PA") or (fmt == "JPEG" and img.mode not in ("RGB", "L")):
        has_alpha = "A" in img.getbands() or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha and fmt != "JPEG" else "RGB")

    def encode(im: Any, quality: int) -> bytes:
        buf = io.BytesIO()
        kwargs: dict[str, Any] = {}
        if icc:
            kwargs["icc_profile"] = icc
        if fmt == "PNG":
            im.save(buf, format="PNG", optimize=True, pnginfo=pnginfo, **kwargs)
        else:
            if exif:
                kwargs["exif"] = exif
            im.save(buf, format=fmt, quality=quality, **kwargs)
        return buf.getvalue()

    qualities = [85, 75, 65, 50] if fmt != "PNG" else [0]
    out = data
    for q in qualities:
        out = encode(img, q)
        if len(out) <= max_bytes:
            return out
    quality = qualities[-1]
    current: Image.Image = img
    while True:
        ratio = max(0.3, min(0.9, math.sqrt(max_bytes / len(out)) * 0.95))
        w, h = max(1, int(current.width * ratio)), max(1, int(current.height * ratio))
        if min(w, h) < 16:
            raise LimitExceededError(
                f"image cannot be shrunk below {len(out)} bytes",
                source=name,
                limit=f"{max_bytes} bytes",
            )
        current = img.resize((w, h), Image.Resampling.LANCZOS)
        out = encode(current, quality)
        if len(out) <= max_bytes:
            return out
