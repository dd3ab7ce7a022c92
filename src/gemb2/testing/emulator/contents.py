"""Reading one embedding request into features, enforcing the model's per-item limits.

Checks mirror what the service refuses, so a client's own validation is tested
against a server that says no in the same way (400 INVALID_ARGUMENT, naming the request).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Generic, TypeVar

from gemb2.errors import MediaReadError
from gemb2.inputs.probe import av_info, canonical_mime, check_image, modality_of, pdf_page_count
from gemb2.inputs.tokens import estimate_tokens
from gemb2.model.catalog import (
    TOKENS_PER_AUDIO_SECOND,
    TOKENS_PER_IMAGE,
    TOKENS_PER_PDF_PAGE,
    TOKENS_PER_VIDEO_SECOND,
    ModelSpec,
)
from gemb2.model.profile import Profile
from gemb2.testing.emulator.api_errors import invalid
from gemb2.testing.emulator.media_text import carried_text
from gemb2.testing.emulator.vectors import (
    PartFeatures,
    Vector,
    content_vector,
    output_values,
    strip_prefix,
)

K = TypeVar("K")
V = TypeVar("V")

TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
_UNDECODABLE_IMAGES = frozenset({"image/heic", "image/heif"})  # Pillow cannot open these


@dataclass(frozen=True)
class MediaFacts:
    """What was read from one media file; cached by content digest."""

    modality: str
    pages: int = 0
    seconds: float = 0.0
    has_audio: bool = False
    text: str = ""


@dataclass
class Item:
    """One content, validated and reduced to features."""

    parts: list[PartFeatures]
    identity: str
    dims: int
    task: str | None
    truncated: bool = False
    tokens: dict[str, int] = field(default_factory=dict)  # modality (upper case) -> tokens
    normalized: bool = False  # the profile's service re-normalises outputs below 3072

    def values(self, space: str) -> Vector:
        """The answer's vector: the first ``dims`` values of the full one."""
        full = content_vector(space, self.parts, self.identity)
        return output_values(full, self.dims, normalize=self.normalized)

    def vector_key(self, space: str) -> tuple[object, ...]:
        """All that ``values`` depends on."""
        return (space, self.identity, tuple(self.parts), self.dims, self.normalized)


class _Recent(Generic[K, V]):
    """The most recently used entries, up to ``limit`` in all by ``weight`` (one each by
    default); thread-safe."""

    def __init__(self, limit: int, weight: Callable[[V], int] = lambda _: 1) -> None:
        self._limit, self._weight, self._total = limit, weight, 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= self._weight(old)
            self._entries[key] = value
            self._total += self._weight(value)
            while self._total > self._limit:
                _, gone = self._entries.popitem(last=False)
                self._total -= self._weight(gone)


class MediaCache(_Recent[tuple[str, str], MediaFacts]):
    """Digest -> facts, so repeated test media are decoded once.

    Sized for the media-scale benchmark's 1,500 files: with fewer entries its warm-up pass
    is evicted and every timed run decodes each file again, on the client's cores."""

    def __init__(self, size: int = 2048) -> None:
        super().__init__(size)


class VectorCache(_Recent[tuple[object, ...], Vector]):
    """Answered vectors by everything they depend on, up to ``max_bytes`` of them.

    A content's vector costs the emulator about 0.1 ms of numpy work (a 3,072-d sum per
    word), on the same cores as the client it serves: benchmarks that send a corpus
    again (a warm-up, then each row) would otherwise measure the stand-in's arithmetic
    more than the client. The vectors are a pure function of the key, so a hit answers
    the same values."""

    def __init__(self, max_bytes: int = 128 << 20) -> None:
        super().__init__(max_bytes, weight=lambda v: v.nbytes)

    def values(self, item: Item, space: str) -> Vector:
        key = item.vector_key(space)
        vector = self.get(key)
        if vector is None:
            vector = item.values(space)
            vector.setflags(write=False)  # shared by every answer that hits it
            self.put(key, vector)
        return vector


def _pick(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def options_of(request: dict[str, Any]) -> dict[str, Any]:
    """Request options, flat (Developer API) or under ``embedContentConfig`` (Vertex AI)."""
    nested = _pick(request, "embedContentConfig", "embed_content_config")
    return {**request, **nested} if isinstance(nested, dict) else dict(request)


def parse_item(
    index: int,
    request: dict[str, Any],
    spec: ModelSpec,
    default_dims: int,
    cache: MediaCache,
    profile: Profile | None = None,
) -> Item:
    """Validate one request (content plus options) and reduce it to features.

    ``profile`` (when it describes ``spec``'s model) says whether a task prefix and
    ``taskType`` change the vector and whether short outputs are normalised; ``spec``
    carries its limits already."""

    def fail(reason: str) -> Exception:
        return invalid(f"request {index}: {reason}")

    if not isinstance(request, dict):
        raise fail("must be an object")
    opts = options_of(request)
    dims = _dimensions(opts, spec, default_dims, fail)
    task_type = _pick(opts, "taskType", "task_type")
    if task_type is not None and task_type not in TASK_TYPES:
        raise fail(
            f"invalid taskType {task_type!r}; expected one of {', '.join(sorted(TASK_TYPES))}"
        )
    title = _pick(opts, "title")
    if title is not None and not isinstance(title, str):
        raise fail("title must be a string")
    auto_truncate = bool(_pick(opts, "autoTruncate", "auto_truncate"))
    audio_track = bool(_pick(opts, "audioTrackExtraction", "audio_track_extraction"))

    content = request.get("content")
    if not isinstance(content, dict):
        raise fail("content is required")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise fail("content is empty: it has no parts")

    lim = spec.limits
    prefixed = spec.conditioning == "prefix"
    served = profile if profile is not None and profile.model == spec.id else None
    prefix_counts = served is None or served.prefix_changes_vector
    features: list[PartFeatures] = []
    identity: list[str] = [spec.id]
    counts = {"image": 0, "audio": 0, "video": 0, "pdf": 0}
    tokens: dict[str, int] = {}
    text_tokens = 0
    inline_bytes = 0
    task: str | None = None
    truncated = False

    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            raise fail(f"part {j} must be an object")
        text = part.get("text")
        inline = _pick(part, "inline_data", "inlineData")
        file_data = _pick(part, "file_data", "fileData")
        if text is not None:
            if not isinstance(text, str):
                raise fail(f"part {j}: text must be a string")
            if not text.strip():
                raise fail(f"part {j}: text is empty")
            text_tokens += estimate_tokens(text)
            body, part_task = strip_prefix(text) if prefixed else (text, None)
            task = task or part_task
            features.append(PartFeatures(kind="text", text=body))
            identity.append(f"t:{text if prefix_counts else body}")
            continue
        if isinstance(inline, dict):
            mime, modality = _media_type(_pick(inline, "mime_type", "mimeType"), spec, j, fail)
            data = _b64(inline.get("data"), j, fail)
            inline_bytes += len(data)
            digest = blake2b(data, digest_size=16).hexdigest()
            media = _inspect(data, mime, modality, digest, cache, lim.max_pdf_pages, j, fail)
            counts[modality] += 1
            _check_media(media, lim, audio_track, j, fail)
            _add_tokens(tokens, media)
            features.append(
                PartFeatures(kind="media", text=media.text, key=digest, modality=modality)
            )
            identity.append(f"m:{digest}")
            continue
        if isinstance(file_data, dict):
            uri = _pick(file_data, "file_uri", "fileUri")
            if not isinstance(uri, str) or not uri:
                raise fail(f"part {j}: file_data.file_uri is required")
            declared = _pick(file_data, "mime_type", "mimeType") or mimetypes.guess_type(uri)[0]
            _, modality = _media_type(declared, spec, j, fail)
            counts[modality] += 1
            features.append(PartFeatures(kind="uri", key=uri, modality=modality))
            identity.append(f"u:{uri}")
            continue
        raise fail(f"part {j} has no text, inline_data or file_data; only those can be embedded")

    if text_tokens > lim.max_tokens:
        if not auto_truncate:
            raise fail(
                f"input has about {text_tokens} text tokens, over the limit of "
                f"{lim.max_tokens} tokens for {spec.id}"
            )
        truncated = True
        features = _truncate(features, lim.max_tokens)
        text_tokens = lim.max_tokens
    for kind, limit in (
        ("image", lim.max_images),
        ("audio", lim.max_audio),
        ("video", lim.max_video),
        ("pdf", lim.max_pdf),
    ):
        if counts[kind] > limit:
            raise fail(f"{counts[kind]} {kind} parts in one content; at most {limit} allowed")
    if inline_bytes > lim.max_inline_bytes:
        raise fail(
            f"inline data is {inline_bytes} bytes, over the limit of {lim.max_inline_bytes} bytes"
        )
    if text_tokens:
        tokens["TEXT"] = text_tokens
    if spec.conditioning == "task_type":
        if title and task_type == "RETRIEVAL_DOCUMENT":
            features.insert(0, PartFeatures(kind="text", text=title))
        identity.append(f"task:{task_type}|title:{title}")
        task = task_type
    elif served is not None and served.task_type_changes_vector and task_type is not None:
        identity.append(f"taskType:{task_type}")
    return Item(
        parts=features,
        identity=blake2b("\x1f".join(identity).encode(), digest_size=16).hexdigest(),
        dims=dims,
        task=task,
        truncated=truncated,
        tokens=tokens,
        normalized=served is not None and served.normalized_below_3072,
    )


def _dimensions(opts: dict[str, Any], spec: ModelSpec, default: int, fail: Any) -> int:
    raw = _pick(opts, "outputDimensionality", "output_dimensionality")
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise fail(f"outputDimensionality must be an integer, got {raw!r}")
    if not spec.min_dimensions <= raw <= spec.max_dimensions:
        raise fail(
            f"outputDimensionality {raw} is out of range: "
            f"allowed {spec.min_dimensions}..{spec.max_dimensions}"
        )
    return raw


def _media_type(declared: Any, spec: ModelSpec, j: int, fail: Any) -> tuple[str, str]:
    if not isinstance(declared, str) or not declared:
        raise fail(f"part {j}: mime_type is required for media")
    mime = canonical_mime(declared)
    modality = modality_of(mime)
    if modality is None:
        raise fail(f"part {j}: unsupported mime type {declared!r}")
    if modality not in spec.modalities:
        raise fail(
            f"part {j}: {spec.id} accepts {', '.join(sorted(spec.modalities))} only, "
            f"not {modality} ({mime})"
        )
    return mime, modality


def _b64(data: Any, j: int, fail: Any) -> bytes:
    if not isinstance(data, str) or not data:
        raise fail(f"part {j}: inline_data.data is required (base64)")
    text = data.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail(f"part {j}: inline_data.data is not valid base64") from exc
    if not raw:
        raise fail(f"part {j}: inline_data.data is empty")
    return raw


def _inspect(
    data: bytes,
    mime: str,
    modality: str,
    digest: str,
    cache: MediaCache,
    max_pdf_pages: int,
    j: int,
    fail: Any,
) -> MediaFacts:
    key = (digest, mime)
    facts = cache.get(key)
    if facts is not None:
        return facts
    try:
        if modality == "image":
            if mime not in _UNDECODABLE_IMAGES:
                check_image(data, name=f"part {j}")
            facts = MediaFacts(modality, text=carried_text(data, modality))
        elif modality == "pdf":
            pages = pdf_page_count(data, name=f"part {j}")
            if pages < 1:
                raise fail(f"part {j}: the PDF has no pages")
            text = carried_text(data, modality, max_pdf_pages) if pages <= max_pdf_pages else ""
            facts = MediaFacts(modality, pages=pages, text=text)
        else:
            info = av_info(data, name=f"part {j}")
            if modality == "video" and not info.has_video:
                raise fail(f"part {j}: declared {mime} but the file has no video stream")
            facts = MediaFacts(
                modality,
                seconds=info.duration,
                has_audio=info.has_audio,
                text=carried_text(data, modality),
            )
    except MediaReadError as exc:
        raise fail(f"part {j}: cannot read {mime}: {exc.reason}") from exc
    cache.put(key, facts)
    return facts


def _check_media(facts: MediaFacts, lim: Any, audio_track: bool, j: int, fail: Any) -> None:
    if facts.modality == "pdf" and facts.pages > lim.max_pdf_pages:
        raise fail(
            f"part {j}: the PDF has {facts.pages} pages, over the limit of {lim.max_pdf_pages}"
        )
    if facts.modality == "audio" and facts.seconds > lim.max_audio_seconds:
        raise fail(
            f"part {j}: audio is {facts.seconds:.1f} s long, "
            f"over the limit of {lim.max_audio_seconds:g} s"
        )
    if facts.modality == "video":
        with_audio = audio_track and facts.has_audio
        limit = lim.max_video_with_audio_seconds if with_audio else lim.max_video_seconds
        if facts.seconds > limit:
            what = "video with its audio track" if with_audio else "video"
            raise fail(
                f"part {j}: {what} is {facts.seconds:.1f} s long, over the limit of {limit:g} s"
            )


def _add_tokens(tokens: dict[str, int], facts: MediaFacts) -> None:
    if facts.modality == "image":
        n, key = TOKENS_PER_IMAGE, "IMAGE"
    elif facts.modality == "pdf":
        n, key = TOKENS_PER_PDF_PAGE * facts.pages, "DOCUMENT"
    elif facts.modality == "audio":
        n, key = round(TOKENS_PER_AUDIO_SECOND * facts.seconds), "AUDIO"
    else:
        n, key = round(TOKENS_PER_VIDEO_SECOND * facts.seconds), "VIDEO"
    tokens[key] = tokens.get(key, 0) + n


def _truncate(parts: list[PartFeatures], max_tokens: int) -> list[PartFeatures]:
    """Vertex ``autoTruncate``: keep roughly the first ``max_tokens`` tokens of text."""
    budget = max_tokens
    out: list[PartFeatures] = []
    for p in parts:
        if p.kind != "text":
            out.append(p)
            continue
        words = p.text.split()
        keep = words[: max(0, budget * 3 // 4)]
        budget -= estimate_tokens(" ".join(keep))
        if keep:
            out.append(PartFeatures(kind="text", text=" ".join(keep)))
    return out
