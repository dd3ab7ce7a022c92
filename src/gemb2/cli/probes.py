"""What ``gemb2 doctor`` sends: small calls that measure a service's facts, and their price.

Every call goes through the package's own transport (``GenAITransport``: the SDK, the key
handling, the wire bodies the Embedder sends), but nothing checks limits first: finding
where the service says no is the point. Limits are found by probing around their
boundary with generated media (``gemb2.testing.samples``), cheapest first: the package's
default, the value just over it, the other published figures, then bisection.
"""

from __future__ import annotations

import functools
import math
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemb2 import redaction
from gemb2.engine.retry import RETRYABLE_CODES, is_transport_error, parse_retry_delay
from gemb2.engine.settings import EmbedSettings
from gemb2.errors import Gemb2Error
from gemb2.inputs.media import Item, Media
from gemb2.inputs.tokens import estimate_tokens
from gemb2.model.pricing import cost_usd, media_tokens
from gemb2.transport.base import EmbedCall
from gemb2.transport.genai import GenAITransport, genai_client

UNKNOWN_MODEL = "gemini-embedding-gemb2-doctor-no-such-model"
COMPARE_DIMS = 768  # small answers; cosines do not depend on the length
SAME_TOLERANCE = 1e-6  # 1 - cosine below this (and the noise) is "the same vector"


class ProbeError(Exception):
    """A probe could not get an answer worth reading (unreachable, refused key, ...)."""


@dataclass(frozen=True)
class Search:
    """How one limit is looked for: integers of ``unit``, the true value within ``tol``."""

    name: str
    modality: str  # what a probe of value x spends: x of it ("text": x tiny requests)
    guess: int  # the package's default
    candidates: tuple[int, ...]  # other published figures, tried before bisecting
    floor: int  # known to be accepted (a basic check)
    ceiling: int  # the largest value probed: at it, the limit is reported as "at least"
    tol: int


SEARCHES: dict[str, Search] = {
    "max_requests_per_call": Search("max_requests_per_call", "text", 100, (), 1, 250, 1),
    "max_images": Search("max_images", "image", 6, (), 1, 16, 1),
    "max_pdf_pages": Search("max_pdf_pages", "pdf", 6, (), 1, 24, 1),
    "max_audio_seconds": Search("max_audio_seconds", "audio", 80, (180,), 2, 300, 2),
    "max_video_seconds": Search("max_video_seconds", "video", 120, (80, 128), 2, 160, 2),
}
LIMIT_SEARCHES = ("max_images", "max_pdf_pages", "max_audio_seconds", "max_video_seconds")


def find_limit(accepts: Callable[[int], bool], s: Search) -> tuple[int, bool]:
    """The largest value accepted, within ``s.tol`` of the true limit, and whether the
    ceiling itself was accepted (then the limit is at least that).

    Tries the default and the value just over it first (two probes when the default is
    right), then each other candidate and the value just over it, then bisects."""
    lo, hi = s.floor, s.ceiling + 1  # lo accepted; hi refused (or past what is probed)

    def probe(x: int) -> None:
        nonlocal lo, hi
        if lo < x < hi:
            if accepts(x):
                lo = x
            else:
                hi = x

    ladder = [s.guess, *sorted(c for c in s.candidates if c > s.guess)]
    below = sorted((c for c in s.candidates if c < s.guess), reverse=True)
    for c in ladder:
        probe(c)
        if lo != c:  # c refused (or out of range): the limit is below c
            break
        probe(c + s.tol)
        if hi == c + s.tol:
            break
    else:
        probe(s.ceiling)
        if lo == s.ceiling:
            return lo, True
    if lo < s.guess:
        for c in below:
            probe(c)
            if lo == c:
                break
    while hi - lo > s.tol:
        probe((lo + hi + 1) // 2)
    return lo, False


def probe_points(s: Search, truth: float) -> list[tuple[int, bool]]:
    """The probes ``find_limit`` sends when the true limit is ``truth``: (value, accepted)."""
    seen: list[tuple[int, bool]] = []

    def accepts(x: int) -> bool:
        seen.append((x, x <= truth))
        return x <= truth

    find_limit(accepts, s)
    return seen


def probe_tokens(s: Search, x: int) -> dict[str, int]:
    """What one probe of value ``x`` sends, in tokens by modality."""
    if s.modality == "text":
        return {"text": x * estimate_tokens(probe_text(0))}
    return {s.modality: media_tokens(s.modality, x)}


@functools.lru_cache(maxsize=64)
def search_cost(s: Search, truth: float | None = None) -> float:
    """Dollars of a search: every probe when ``truth`` is None (the most any true limit
    makes it send), else what it sends when the limit is ``truth``."""
    if truth is not None:
        return sum(cost_usd(probe_tokens(s, x)) for x, _ in probe_points(s, truth))
    worst = 0.0
    for t in range(s.floor, s.ceiling + s.tol + 1):
        worst = max(worst, sum(cost_usd(probe_tokens(s, x)) for x, _ in probe_points(s, t)))
    return worst


def probe_text(i: int) -> str:
    return f"gemb2 doctor probe number {i}"


# --- generated media ---------------------------------------------------------------------


class MediaMaker:
    """Small synthetic media, made once per size in a private folder (lowest bitrates:
    8 kHz mono WAV, 64x64 video at 1 frame a second)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="gemb2-doctor-")
        self._made: dict[tuple[str, int], Media] = {}

    def close(self) -> None:
        self._made.clear()
        self._dir.cleanup()

    def _make(self, kind: str, n: int, build: Callable[[Path], Path]) -> Media:
        key = (kind, n)
        if key not in self._made:
            path = build(Path(self._dir.name) / f"{kind}-{n}")
            self._made[key] = Media.from_bytes(path.read_bytes(), name=path.name)
            path.unlink()
        return self._made[key]

    def image(self, i: int) -> Media:
        from gemb2.testing import samples

        color = ((37 * i) % 256, (91 * i) % 256, (53 * i + 128) % 256)
        return self._make(
            "png",
            i,
            lambda p: samples.make_png(
                p.with_suffix(".png"), f"probe image {i}", color=color, size=(32, 32)
            ),
        )

    def pdf(self, pages: int) -> Media:
        from gemb2.testing import samples

        texts = [f"probe page {k + 1} of {pages}" for k in range(pages)]
        return self._make("pdf", pages, lambda p: samples.make_pdf(p.with_suffix(".pdf"), texts))

    def audio(self, seconds: int) -> Media:
        from gemb2.testing import samples

        return self._make(
            "wav",
            seconds,
            lambda p: samples.make_wav(
                p.with_suffix(".wav"), seconds, description="a probe tone", sample_rate=8000
            ),
        )

    def video(self, seconds: int) -> Media:
        from gemb2.testing import samples

        return self._make(
            "mp4",
            seconds,
            lambda p: samples.make_mp4(
                p.with_suffix(".mp4"), seconds, description="a probe video", fps=1, size=(64, 64)
            ),
        )


# --- the service -------------------------------------------------------------------------


@dataclass
class Outcome:
    """One probe's answer: vectors, or the error the service gave."""

    vectors: list[list[float]] = field(default_factory=list)
    code: int | None = None
    status: str | None = None
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.code is None


def _retry_delay(exc: Any, attempt: int) -> float:
    """The service's RetryInfo delay, else exponential backoff; at most a minute."""
    delay = parse_retry_delay(getattr(exc, "details", None), getattr(exc, "message", None))
    return min(60.0, delay if delay is not None else 2.0**attempt)


class Service:
    """Probe calls through the package's transport, with their count and price."""

    def __init__(
        self,
        settings: EmbedSettings,
        *,
        retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.transport = GenAITransport(settings)
        self.retries = retries
        self._sleep = sleep
        self.requests = 0
        self.spent: dict[str, int] = {}  # tokens of accepted calls, by modality

    @property
    def where(self) -> str:
        return self.settings.base_url or ("Vertex AI" if self.settings.vertexai else "Google")

    def close(self) -> None:
        self.transport.close()

    def embed(
        self,
        items: Sequence[Item],
        *,
        tokens: dict[str, int],
        dims: int = COMPARE_DIMS,
        task_type: str | None = None,
        model: str | None = None,
    ) -> Outcome:
        """One call of ``items`` (``tokens``: what it spends if accepted). Refusals come
        back as an Outcome; retryable errors are retried; anything else is a ProbeError."""
        from google.genai import errors as genai_errors

        from gemb2.transport.wire import MalformedAnswer

        call = EmbedCall(
            model=model or self.settings.spec.id,
            dimensions=dims,
            items=[(item, None) for item in items],
            task_type=task_type,
        )
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                vectors = self.transport.post(call).decode().vectors
            except genai_errors.APIError as exc:
                code = int(exc.code or 0)
                if code in RETRYABLE_CODES and attempt < self.retries:
                    self._sleep(_retry_delay(exc, attempt))
                    continue
                message = redaction.redact_text(str(exc.message or exc))
                return Outcome(code=code, status=str(exc.status or ""), message=message)
            except MalformedAnswer as exc:
                raise ProbeError(
                    f"{self.where} sent something that is not an answer: {exc}"
                ) from None
            except Gemb2Error as exc:  # e.g. no API key
                raise ProbeError(redaction.redact_text(str(exc))) from None
            except Exception as exc:
                if isinstance(exc, OSError) or is_transport_error(exc):
                    why = redaction.redact_text(str(exc)) or type(exc).__name__
                    raise ProbeError(f"cannot reach {self.where}: {why}") from None
                raise
            for modality, n in tokens.items():
                self.spent[modality] = self.spent.get(modality, 0) + n
            return Outcome(vectors=vectors)
        raise AssertionError("unreachable")  # pragma: no cover

    def spent_usd(self) -> float:
        return cost_usd(self.spent)

    def client(self) -> Any:
        """The SDK client (Batch Mode)."""
        return genai_client(self.transport)


def cosine_gap(a: Sequence[float], b: Sequence[float]) -> float:
    """1 - cosine of two vectors (0: the same direction)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / (na * nb) if na and nb else 1.0


def norm(v: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def differs(a: Sequence[float], b: Sequence[float], noise: float) -> bool:
    """The two vectors differ by more than the service's own repeat noise."""
    return cosine_gap(a, b) > max(SAME_TOLERANCE, 10 * noise)


def template_of(message: str, values: dict[str, str]) -> str:
    """An error message with its variable parts as ``{placeholders}`` (a profile's text):
    braces escaped, each value replaced where it stands as a whole word."""
    text = message.strip().replace("{", "{{").replace("}", "}}")
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if value:
            text = re.sub(rf"(?<![\w.]){re.escape(value)}(?![\w])", "{" + name + "}", text)
    return text
