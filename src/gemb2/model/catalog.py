"""Model catalog: the one place that knows each model's ids, modalities and limits."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gemb2.errors import ConfigError

Modality = Literal["text", "image", "audio", "video", "pdf"]
# Pillow's own Image.MAX_IMAGE_PIXELS (past it Pillow warns of a decompression bomb)
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
Conditioning = Literal["prefix", "task_type", "none"]


class Limits(BaseModel):
    """Per-item input limits. Defaults follow Google's published figures; where
    sources disagree (audio 80 s vs 180 s, video 120 s vs 128 s) the stricter is the default."""

    model_config = ConfigDict(frozen=True)

    max_tokens: int = Field(8192, ge=1, description="text tokens in total across one item")
    max_images: int = Field(6, ge=0, description="images in one item")
    max_audio: int = Field(1, ge=0, description="audio files in one item")
    max_video: int = Field(1, ge=0, description="video files in one item")
    max_pdf: int = Field(1, ge=0, description="PDF files in one item")
    max_pdf_pages: int = Field(6, ge=1, description="pages of one PDF")
    max_audio_seconds: float = Field(80.0, gt=0, description="length of one audio file")
    max_video_seconds: float = Field(120.0, gt=0, description="length of a video, no audio track")
    max_video_with_audio_seconds: float = Field(
        80.0, gt=0, description="length of a video whose audio track is used"
    )
    max_inline_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="inline request payload of one item"
    )
    max_batch: int = Field(100, ge=1, le=100, description="items in one batch call")
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS,
        ge=1,
        description="pixels of an image decoded in full (a client-side memory budget, not a "
        "service limit; about 0.36 GB at the default): a baseline JPEG over it is decoded at "
        "1/2 to 1/8 scale, any other image over it is refused",
    )


@dataclass(frozen=True)
class ModelSpec:
    id: str
    modalities: frozenset[str]
    conditioning: Conditioning
    limits: Limits
    default_dimensions: int = 3072
    min_dimensions: int = 128
    max_dimensions: int = 3072
    recommended_dimensions: tuple[int, ...] = (768, 1536, 3072)
    aliases: tuple[str, ...] = ()
    note: str = ""

    def check_dimensions(self, dimensions: int | None) -> int:
        dims = self.default_dimensions if dimensions is None else dimensions
        if not self.min_dimensions <= dims <= self.max_dimensions:
            raise ConfigError(
                f"dimensions={dims} is out of range for {self.id}: "
                f"allowed {self.min_dimensions}..{self.max_dimensions} "
                f"(recommended {', '.join(map(str, self.recommended_dimensions))})"
            )
        return dims


_ALL: frozenset[str] = frozenset({"text", "image", "audio", "video", "pdf"})

MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            id="gemini-embedding-2",
            modalities=_ALL,
            conditioning="prefix",
            limits=Limits(),
            aliases=("gemini-embedding-2-preview",),
            note="GA multimodal model; the default",
        ),
        ModelSpec(
            id="gemini-embedding-001",
            modalities=frozenset({"text"}),
            conditioning="task_type",
            limits=Limits(max_tokens=2048, max_images=0, max_audio=0, max_video=0, max_pdf=0),
            note="text-only; an older, incompatible vector space",
        ),
    )
}

DEFAULT_MODEL = "gemini-embedding-2"
_ALIASES = {alias: spec.id for spec in MODELS.values() for alias in spec.aliases}
_warned: set[str] = set()


def canonical_model(name: str) -> str:
    """The id to send for ``name``: a retired alias becomes its model's id, with a warning
    the first time (``gemini-embedding-2-preview`` was shut down on 2026-08-10)."""
    key = name.removeprefix("models/")
    target = _ALIASES.get(key)
    if target is None:
        return name
    if key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"{key!r} was shut down on 2026-08-10; using {target!r} (the same vector space). "
            f"Pass model={target!r} to silence this warning.",
            FutureWarning,
            stacklevel=4,
        )
    return target


def get_model(name: str) -> ModelSpec:
    """Look a model up by id, accepting a ``models/`` prefix and the retired aliases."""
    key = name.removeprefix("models/")
    key = _ALIASES.get(key, key)
    if key in MODELS:
        return MODELS[key]
    raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")


def is_multimodal(name: str) -> bool:
    return len(get_model(name).modalities) > 1


# Preview list prices in USD per million input tokens; Batch Mode is half.
PRICE_PER_MILLION_TOKENS: dict[str, float] = {
    "text": 0.20,
    "image": 0.45,
    "pdf": 0.45,
    "audio": 6.50,
    "video": 12.00,
}
BATCH_DISCOUNT = 0.5
# Token counts Gemini documents for media, used to estimate cost before a call.
TOKENS_PER_IMAGE = 258
TOKENS_PER_PDF_PAGE = 258
TOKENS_PER_AUDIO_SECOND = 32
TOKENS_PER_VIDEO_SECOND = 263
