"""The package's exception tree.

Input problems are found before any network call and say which item, what is
wrong and the limit. Service problems keep the API's ``code`` and ``status``. No
message or detail holds an API key (see ``redaction``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gemb2.redaction import redact


class Gemb2Error(Exception):
    """Base of every error raised by gemb2."""

    def __init__(self, *args: object) -> None:
        # services echo the key they were sent: no message of ours carries it on
        super().__init__(*redact(args))


class ConfigError(Gemb2Error, ValueError):
    """A setting is invalid (unknown model, dimension out of range, missing credentials)."""


class InputError(Gemb2Error, ValueError):
    """An input item cannot be embedded as given; raised before any network call."""

    def __init__(
        self,
        reason: str,
        *,
        item: int | None = None,
        source: str | None = None,
        limit: str | None = None,
    ) -> None:
        self.item = item
        self.source = source
        self.reason = reason
        self.limit = limit
        where = []
        if item is not None:
            where.append(f"item {item}")
        if source:
            where.append(_short(source))
        text = f"{' ('.join(where)}{')' if len(where) > 1 else ''}: {reason}" if where else reason
        if limit:
            text += f" (limit: {limit})"
        super().__init__(text)

    def at(self, item: int, source: str | None = None) -> InputError:
        """The same error, re-addressed to item ``item`` of the caller's input list."""
        return type(self)(self.reason, item=item, source=source or self.source, limit=self.limit)


def _short(text: str, keep: int = 200) -> str:
    """A name fit for a message: a 10,000-character path would bury the reason."""
    if len(text) <= keep:
        return text
    half = keep // 2
    return f"{text[:half]}...({len(text)} chars)...{text[-half:]}"


class LimitExceededError(InputError):
    """The item is over one of the model's per-item limits; split it or shrink it."""


class UnsupportedMediaError(InputError):
    """The file's type is not one the model accepts."""


class MediaReadError(InputError):
    """The media could not be read or is corrupt or truncated."""


class APIError(Gemb2Error):
    """The service answered with an error; ``code`` and ``status`` are the API's."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        message, details = redact(message), redact(details)
        self.code = code
        self.status = status
        self.message = message
        self.details = details
        self.retry_after = retry_after
        prefix = " ".join(str(p) for p in (code, status) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class RateLimitError(APIError):
    """429 RESOURCE_EXHAUSTED: the project's quota or rate limit was hit."""


class ServerError(APIError):
    """5xx from the service."""


class TransportError(APIError):
    """The connection failed, was dropped or timed out before an answer."""


class RetryExhaustedError(APIError):
    """Retries ran out; ``last`` is the final failure."""

    def __init__(self, last: APIError, attempts: int) -> None:
        self.last = last
        self.attempts = attempts
        super().__init__(
            f"gave up after {attempts} attempts: {last}",
            code=last.code,
            status=last.status,
            details=last.details,
        )


class ResponseMismatchError(APIError):
    """An answer that cannot be used: not JSON, another number of vectors than items
    sent, a vector of the wrong dimension, NaN, infinity or zero. ``items`` are the input
    positions of the batch it answered; ``item`` the one whose vector is at fault (None
    when the answer as a whole is) and ``reason`` what is wrong, so no caller parses the
    message. The Embedder retries it as a fault on the wire; when retries run out it is
    the ``last`` of a ``RetryExhaustedError``."""

    def __init__(
        self,
        message: str,
        *,
        items: Sequence[int] = (),
        item: int | None = None,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.items = tuple(items)
        self.item = item
        self.reason = redact(reason if reason is not None else message)
        super().__init__(message, **kwargs)


class ModelMismatchError(Gemb2Error, ValueError):
    """A collection was built with another model or dimension; the spaces are incompatible."""


class StoreError(Gemb2Error):
    """A vector store operation failed (its server went away, it refused a write) during
    indexing. ``report`` is the ``IndexReport`` up to the failure (``items_written``:
    the records this run stored); the store's own error is ``__cause__``."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)
