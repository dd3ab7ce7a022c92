"""One batch call, attempt by attempt: every decision made once, for both drivers.

``attempts`` is a generator of steps. It yields ``Pause(seconds)`` (the rate limiter's
turn, a retry's backoff) and ``Send`` (post this call while holding a share of the byte
budget and a concurrency slot), receives the answer or has the send's failure thrown in,
and returns the checked ``Answered`` batch, or raises to give up. ``Embedder._call``
carries the steps out in a thread (``threading`` waits, ``transport.post``) and
``_acall`` on an event loop (``asyncio`` waits, ``transport.apost``): they only wait,
hold the budget and slot, and post. Counting attempts, classifying failures, backing
off, not sending after the run failed, and checking answers are decided here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass

from gemb2.engine import retry, vectors
from gemb2.engine.concurrency import Outcome
from gemb2.engine.planning import Answered, PreparedItem, inline_bytes
from gemb2.engine.ratelimit import DEFAULT_THROTTLE, RateLimiter
from gemb2.engine.settings import EmbedSettings
from gemb2.engine.usage import Usage
from gemb2.errors import ResponseMismatchError, RetryExhaustedError, TransportError
from gemb2.transport import wire
from gemb2.transport.base import Answer, CallResult, EmbedCall

log = logging.getLogger("gemb2")
# answers that say the service is overloaded: the concurrency window shrinks
OVERLOAD_CODES = frozenset({408, 429, 503, 504})


class Stopped(Exception):
    """The run failed before this call was sent: it is not sent (not a request)."""


@dataclass(frozen=True)
class Pause:
    """Wait this long, then take the next step (a driver may end it early once the run
    has failed: the step after it sends nothing)."""

    seconds: float


@dataclass(frozen=True)
class Send:
    """Post the batch's call while holding ``nbytes`` of the in-flight byte budget and a
    concurrency slot; hand back its ``Answer``, or throw in what posting raised."""

    batch: list[PreparedItem]
    model: str
    dimensions: int
    nbytes: int
    stopped: Callable[[], bool]

    def call(self) -> EmbedCall:
        """The call to post, built once the slot is held (the contents exist only while
        it is). Raises ``Stopped`` if the run failed while this call waited for it."""
        if self.stopped():
            raise Stopped
        first = self.batch[0]
        return EmbedCall(
            self.model,
            self.dimensions,
            [(p.item, p.text) for p in self.batch],
            first.task_type,
            first.title,
        )


Steps = Generator[Pause | Send, Answer | None, Answered]


def attempts(
    batch: list[PreparedItem],
    *,
    settings: EmbedSettings,
    dimensions: int,
    limiter: RateLimiter,
    usage: Usage,
    stopped: Callable[[], bool],
) -> Steps:
    """The steps of one batch call, retried as ``settings`` say: a malformed answer is a
    fault on the wire like a 503. Every attempt sent is counted, whatever came of it."""
    tokens = sum(p.tokens.get("text", 0) for p in batch)
    send = Send(batch, settings.spec.id, dimensions, inline_bytes(batch), stopped)
    attempt = 0
    while True:
        attempt += 1
        wait = limiter.reserve(tokens)
        if wait:
            yield Pause(wait)
        try:
            answer = yield send
        except GeneratorExit:  # the driver dropped the call before sending it (cancelled)
            raise
        except BaseException as exc:  # a call cancelled while posting was sent all the same
            count(usage, attempt, exc)
            if not isinstance(exc, Exception):
                raise
            delay = next_wait(exc, attempt, settings, limiter)
        else:
            count(usage, attempt)
            if answer is None:
                raise TypeError("a Send step is answered with the call's Answer")
            try:
                # decoded in the calling thread, after the call has freed its slot (about
                # 5 ms of CPU per 100 vectors of 768)
                out, billed = decode(batch, answer, dimensions, normalize=settings.normalize)
                return Answered(out, billed, attempt)
            except ResponseMismatchError as exc:
                delay = next_wait(exc, attempt, settings, limiter)
        yield Pause(delay)


def count(usage: Usage, attempt: int, exc: BaseException | None = None) -> None:
    """Count an attempt, whatever came of it; not one that failed before anything was
    sent (a missing key, a bug, a run already stopped: not a failure of the service)."""
    if isinstance(exc, Exception) and retry.wrap(exc) is None:
        return
    usage.record_attempt(retry=attempt > 1)


def outcome(exc: BaseException | None) -> tuple[Outcome, float]:
    """What a call's end says about the service's load, for the concurrency window: an
    answer (even one that cannot be used), an overload (a 429, a 503/504/408, a
    timeout or dropped connection), or neither (a refusal, a bug, a cancellation); and
    how long no waiting call should start (a 429's retry delay, or DEFAULT_THROTTLE)."""
    if exc is None:
        return "clean", 0.0
    err = retry.wrap(exc) if isinstance(exc, Exception) else None
    if err is None:
        return "other", 0.0
    if err.code == 429:
        return "overload", DEFAULT_THROTTLE if err.retry_after is None else err.retry_after
    if isinstance(err, TransportError) or err.code in OVERLOAD_CODES:
        return "overload", 0.0
    return "other", 0.0


def next_wait(
    exc: BaseException, attempt: int, settings: EmbedSettings, limiter: RateLimiter
) -> float:
    """Seconds to wait before the next attempt, or raise the package's error. A 429
    pauses every sharer of ``limiter`` for its retry delay (or ``DEFAULT_THROTTLE``)."""
    err = retry.wrap(exc)
    if err is None:
        raise exc
    if err.code == 429:
        limiter.throttled(err.retry_after)
    if not retry.is_retryable(err):
        if err is exc:
            raise err
        raise err from exc
    if attempt > settings.max_retries:
        raise RetryExhaustedError(err, attempt) from exc
    s = settings
    delay = retry.backoff(attempt - 1, s.backoff_initial, s.backoff_max, err.retry_after)
    log.info("attempt %d failed (%s); retrying in %.1fs", attempt, err, delay)
    return delay


def decode(
    batch: list[PreparedItem], answer: Answer, dimensions: int, *, normalize: bool
) -> tuple[list[list[float]], int | None]:
    """The batch's vectors, checked and normalised, and the billed tokens the answer
    reported; ``ResponseMismatchError`` if the answer cannot be used."""
    try:
        result = answer.decode()
    except wire.MalformedAnswer as exc:
        raise mismatch(batch, exc.reason) from None
    return validate(batch, result, dimensions, normalize=normalize), result.billed_tokens


def validate(
    batch: list[PreparedItem], result: CallResult, dimensions: int, *, normalize: bool
) -> list[list[float]]:
    """One vector of ``dimensions`` finite numbers per item, or ``ResponseMismatchError``
    naming the item at fault in ``.item`` when one is."""
    if len(result.vectors) != len(batch):
        raise mismatch(
            batch,
            f"sent {len(batch)} items but the service returned {len(result.vectors)} "
            "vectors; refusing to guess which vector belongs to which item",
        )
    for p, v in zip(batch, result.vectors, strict=True):
        if len(v) != dimensions:
            raise mismatch(batch, f"got a {len(v)}-d vector, asked for {dimensions}", p.index)
    try:
        # one array per batch: per-value Python checks cost more CPU than the engine
        return vectors.checked_rows(result.vectors, normalize=normalize)
    except vectors.BadVectorError as exc:
        at = batch[exc.row].index if exc.row is not None else None
        raise mismatch(batch, exc.reason, at) from None


def mismatch(
    batch: list[PreparedItem], reason: str, item: int | None = None
) -> ResponseMismatchError:
    """The error of an unusable answer, naming the batch by its input positions (and the
    one item at fault, when one is)."""
    idx = [p.index for p in batch]
    lo, hi = min(idx), max(idx)
    if len(idx) == 1:
        where = f"item {lo}"
    elif hi - lo + 1 == len(idx):
        where = f"items {lo}..{hi}"
    else:
        where = f"{len(idx)} items between {lo} and {hi}"
    said = f"item {item}: {reason}" if item is not None else reason
    return ResponseMismatchError(
        f"bad answer for {where}: {said}", items=idx, item=item, reason=reason
    )
