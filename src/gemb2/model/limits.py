"""Pre-flight checks of an Item against its model's limits, before any network call."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from gemb2.errors import InputError, LimitExceededError, MediaReadError, UnsupportedMediaError
from gemb2.inputs import probe
from gemb2.inputs.media import Item, Media
from gemb2.inputs.tokens import estimate_tokens, utf8_len
from gemb2.model.catalog import (
    TOKENS_PER_AUDIO_SECOND,
    TOKENS_PER_IMAGE,
    TOKENS_PER_PDF_PAGE,
    TOKENS_PER_VIDEO_SECOND,
    Limits,
    ModelSpec,
)


@dataclass(frozen=True)
class _Facts:
    """What checking one media file measured."""

    measure: float  # pages of a PDF, seconds of audio/video (from the data), 0 for an image
    has_audio: bool = False
    wav_header_seconds: float | None = None  # set when a WAV header claims less than it holds


_measured: dict[str, _Facts] = {}


def _probe(media: Media, limits: Limits) -> _Facts:
    """Pages for a PDF, seconds for audio/video, 0 for an image (decoded to catch corruption,
    within the pixel budget).

    Keyed by content digest (and the budget, for images) so a file checked once is not
    decoded again; holds no bytes."""
    key = media.digest
    if media.modality == "image":
        key += f":{limits.max_image_pixels}"
    if key not in _measured:
        data, name = media.read() or b"", media.name
        if media.modality == "pdf":
            facts = _Facts(float(probe.pdf_page_count(data, name)))
        elif media.modality in ("audio", "video"):
            claimed = None
            if media.mime_type == "audio/wav":  # a truncated WAV or one whose header lies
                layout = probe.wav_layout(data, name)
                if layout is not None and layout.lies:
                    claimed = layout.declared_seconds
            info = probe.av_info(data, name)
            facts = _Facts(info.duration, info.has_audio, claimed)
        else:
            probe.check_image(data, name, limits.max_image_pixels)
            facts = _Facts(0.0)
        if len(_measured) > 100_000:
            _measured.clear()
        _measured[key] = facts
    return _measured[key]


def check_item(
    item: Item, index: int, spec: ModelSpec, limits: Limits, *, use_video_audio: bool = False
) -> dict[str, int]:
    """Raise a typed error naming the item, what is wrong and the limit.

    Returns the item's estimated input tokens by modality, for pacing and cost."""
    if not item.parts:
        raise InputError("item is empty", item=index, source=item.name)
    for text in item.texts:
        if text.isascii():  # a flag of the string: the common case costs nothing
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"text holds a character that is not valid Unicode ({text[exc.start]!r} at "
                f"position {exc.start}), e.g. from bytes decoded with errors='surrogateescape'",
                item=index,
                source=item.name,
                limit="valid UTF-8 text",
            ) from None
    tokens = sum(estimate_tokens(t) for t in item.texts)
    text_only = not item.media
    if text_only and not item.text.strip():
        raise InputError("text is empty", item=index, source=item.name, limit="at least 1 token")
    if tokens > limits.max_tokens:
        raise _too_long(f"text is about {tokens} tokens", item, index, spec, limits)
    if text_only:  # nothing below applies: most items end here
        return {"text": tokens}
    counts = Counter(m.modality for m in item.media)
    for modality, count in counts.items():
        if modality not in spec.modalities:
            raise UnsupportedMediaError(
                f"{spec.id} is text-only and cannot embed {modality}",
                item=index,
                source=item.name,
                limit="use gemini-embedding-2 for media",
            )
        allowed = {
            "image": limits.max_images,
            "audio": limits.max_audio,
            "video": limits.max_video,
            "pdf": limits.max_pdf,
        }[modality]
        if count > allowed:
            raise LimitExceededError(
                f"{count} {modality} parts in one item",
                item=index,
                source=item.name,
                limit=f"{allowed} {modality} per item",
            )
    payload = sum(m.size for m in item.media) + utf8_len(item.text)
    if payload > limits.max_inline_bytes:
        raise LimitExceededError(
            f"inline payload is {payload / 1e6:.1f} MB",
            item=index,
            source=item.name,
            limit=f"{limits.max_inline_bytes / 1e6:.0f} MB inline; upload through the Files API "
            "or split the media",
        )
    estimate: Counter[str] = Counter()
    if tokens:
        estimate["text"] = tokens
    for media in item.media:
        if not media.is_inline:
            estimate[media.modality] += TOKENS_PER_IMAGE  # by reference: the service checks it
            continue
        try:
            facts = _probe(media, limits)
        except MediaReadError as exc:
            raise exc.at(index, media.name) from exc
        _check_measure(media, facts, index, limits, use_video_audio)
        estimate[media.modality] += _tokens_for(media.modality, facts.measure)
    return estimate


def _tokens_for(modality: str, measure: float) -> int:
    per_unit = {
        "pdf": TOKENS_PER_PDF_PAGE,
        "audio": TOKENS_PER_AUDIO_SECOND,
        "video": TOKENS_PER_VIDEO_SECOND,
    }
    if modality in per_unit:
        return int(measure * per_unit[modality] + 0.5)
    return TOKENS_PER_IMAGE


def _check_measure(
    media: Media, facts: _Facts, index: int, limits: Limits, use_video_audio: bool
) -> None:
    measure = facts.measure
    if media.modality == "pdf" and measure > limits.max_pdf_pages:
        raise LimitExceededError(
            f"PDF has {int(measure)} pages",
            item=index,
            source=media.name,
            limit=f"{limits.max_pdf_pages} pages per PDF; split it with gemb2.segment.split_pdf",
        )
    claimed = facts.wav_header_seconds
    if media.modality == "audio" and measure > limits.max_audio_seconds:
        lie = "" if claimed is None else f" (its WAV header claims {claimed:.1f} s)"
        raise LimitExceededError(
            f"audio is {measure:.1f} s long{lie}",
            item=index,
            source=media.name,
            limit=f"{limits.max_audio_seconds:g} s per audio; split it with "
            "gemb2.segment.split_media",
        )
    if claimed is not None:
        raise MediaReadError(
            f"WAV header claims {claimed:.1f} s but the file holds {measure:.1f} s of samples: "
            f"the service would read only {claimed:.1f} s",
            item=index,
            source=media.name,
            limit="a header that states the data; gemb2.ingest.loading.load_file and "
            "gemb2.segment.segment_file repair it, or re-save the file",
        )
    if media.modality == "video":
        max_s = limits.max_video_seconds
        if use_video_audio and facts.has_audio:
            max_s = min(max_s, limits.max_video_with_audio_seconds)
        if measure > max_s:
            raise LimitExceededError(
                f"video is {measure:.1f} s long",
                item=index,
                source=media.name,
                limit=f"{max_s:g} s per video; split it with gemb2.segment.split_media",
            )


def check_sent_text(
    sent: str, item: Item, index: int, own: int, spec: ModelSpec, limits: Limits
) -> None:
    """The text actually sent (the item's, with its task prefix) within the token limit.

    The estimate is subadditive, so estimate(prefix) + the item's own ``own`` tokens bounds
    it when the prefix ends in whitespace and the item is one text (the usual case): only
    a bound over the limit is worth estimating exactly."""
    if len(item.parts) == 1 and sent.endswith(item.text):
        prefix = sent[: len(sent) - len(item.text)]
        if (not prefix or prefix[-1].isspace()) and own + _prefix_tokens(prefix) <= (
            limits.max_tokens
        ):
            return
    tokens = estimate_tokens(sent)
    if tokens > limits.max_tokens:
        raise _too_long(
            f"text is about {tokens} tokens with its task prefix", item, index, spec, limits
        )


@lru_cache(maxsize=256)
def _prefix_tokens(prefix: str) -> int:
    """Prefixes repeat (one per task and role, or per title): estimated once each."""
    return estimate_tokens(prefix)


def _too_long(what: str, item: Item, index: int, spec: ModelSpec, limits: Limits) -> Exception:
    return LimitExceededError(
        what,
        item=index,
        source=item.name,
        limit=(
            f"{limits.max_tokens} tokens per item for {spec.id}; "
            "split it with gemb2.segment.split_text"
        ),
    )
