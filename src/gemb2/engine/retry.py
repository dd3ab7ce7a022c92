"""Which failures are worth another try, and how long to wait before it.

The SDK's own retry ignores the server's retry delay and never retries a dropped
connection, so gemb2 classifies errors itself and honours ``RetryInfo``. A malformed
answer (``ResponseMismatchError``) is a fault on the wire too, and is retried.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from google.genai import errors as genai_errors

from gemb2 import redaction
from gemb2.errors import (
    APIError,
    RateLimitError,
    ResponseMismatchError,
    ServerError,
    TransportError,
)

RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "h11", "anyio")
_RETRY_IN = re.compile(r"retry in ([0-9.]+)\s*(ms|s)", re.IGNORECASE)


def parse_retry_delay(details: Any, message: str | None) -> float | None:
    """Seconds from ``RetryInfo.retryDelay`` ("34s") or "Please retry in 34.5s"."""
    found: list[Any] = []
    _walk(details, found)
    for entry in found:
        delay = entry.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                pass
    match = _RETRY_IN.search(message or "")
    if match:
        value = float(match.group(1))
        return value / 1000 if match.group(2).lower() == "ms" else value
    return None


def _walk(node: Any, found: list[Any]) -> None:
    if isinstance(node, dict):
        if "retryDelay" in node:
            found.append(node)
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    root = type(exc).__module__.split(".")[0]
    return root in _TRANSPORT_MODULES


def wrap(exc: BaseException) -> APIError | None:
    """The package's error for an SDK or transport failure; None if it is neither.

    The failure itself is redacted in place: it stays the error's ``__cause__``."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, genai_errors.APIError) or is_transport_error(exc):
        redaction.scrub(exc)
    if isinstance(exc, genai_errors.APIError):
        code = int(exc.code) if exc.code else None
        message = exc.message or str(exc)
        delay = parse_retry_delay(exc.details, message)
        cls: type[APIError] = APIError
        if code == 429:
            cls = RateLimitError
        elif code is not None and code >= 500:
            cls = ServerError
        return cls(message, code=code, status=exc.status, details=exc.details, retry_after=delay)
    if is_transport_error(exc):
        text = str(exc) or type(exc).__name__
        return TransportError(f"{type(exc).__name__}: {text}", status="UNAVAILABLE")
    return None


def is_retryable(err: APIError) -> bool:
    return isinstance(err, (TransportError, ResponseMismatchError)) or (err.code in RETRYABLE_CODES)


def backoff(attempt: int, initial: float, maximum: float, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never shorter than the server's delay."""
    base = min(maximum, initial * (2**attempt))
    wait = random.uniform(base / 2, base)
    if retry_after is not None:
        wait = max(wait, retry_after + random.uniform(0, min(1.0, retry_after * 0.1 + 0.1)))
    return wait
