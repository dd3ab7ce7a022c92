"""What a request costs before it is sent: tokens by modality at the catalog's list prices.

For plans (``gemb2 doctor``, the live contract suite) that must show their price and
refuse above a cap before any call; the engine's ``Usage`` counts what calls did.
"""

from __future__ import annotations

from collections.abc import Mapping

from gemb2.model.catalog import (
    BATCH_DISCOUNT,
    PRICE_PER_MILLION_TOKENS,
    TOKENS_PER_AUDIO_SECOND,
    TOKENS_PER_IMAGE,
    TOKENS_PER_PDF_PAGE,
    TOKENS_PER_VIDEO_SECOND,
)

_PER_UNIT = {
    "image": TOKENS_PER_IMAGE,  # per image
    "pdf": TOKENS_PER_PDF_PAGE,  # per page
    "audio": TOKENS_PER_AUDIO_SECOND,  # per second
    "video": TOKENS_PER_VIDEO_SECOND,  # per second
}


def media_tokens(modality: str, amount: float) -> int:
    """Tokens of ``amount`` images, PDF pages, or seconds of audio or video."""
    return int(amount * _PER_UNIT[modality] + 0.5)


def cost_usd(tokens: Mapping[str, int], *, batch_mode: bool = False) -> float:
    """List price of input tokens by modality ("text", "image", "pdf", "audio", "video")."""
    factor = BATCH_DISCOUNT if batch_mode else 1.0
    return sum(PRICE_PER_MILLION_TOKENS.get(m, 0.0) * n / 1e6 for m, n in tokens.items()) * factor
