"""API keys out of every message, detail and log line the package produces.

Services and proxies echo the key a request carried in their error messages (Google's
403 "API key not valid" does), and such a message becomes an exception's text, a retry
log line and the CLI's error line. Every key a client is built with is registered here;
it, and anything shaped like a Google API key, is replaced wherever gemb2 builds a
message, keeps an error's details or logs.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<redacted>"
# Google API keys: "AIza" and 35 more characters of [0-9A-Za-z_-]
KEY_SHAPE = re.compile(r"AIza[0-9A-Za-z_-]{35}")
# shorter "keys" (a stand-in such as "emulator") would blank ordinary words out of messages
MIN_SECRET_LENGTH = 8
# loggers of the package's modules and wrappers (filters do not apply to child loggers)
LOGGERS = (
    "gemb2",
    "gemb2.llamaindex",
    "gemb2.testing.emulator.server",
    "gemb2.testing.emulator.media_text",
    "haystack_gemb2",
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so a key never leaves a tail behind

T = TypeVar("T")


def register(secret: str | None) -> None:
    """Remember a key in use, so no message of this process ever shows it."""
    global _secrets
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if secret not in _secrets:
            _secrets = tuple(sorted({*_secrets, secret}, key=len, reverse=True))


def redact_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return KEY_SHAPE.sub(REDACTED, text) if "AIza" in text else text


def redact_url(url: str) -> str:
    """``url`` with the password of its user info, if any, replaced (``redis://:pw@host``
    holds one): what repr, messages and serialised settings show of a URL."""
    if "@" not in url:
        return str(url)
    parts = urlsplit(str(url))
    if parts.password is None:
        return str(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{REDACTED}@{host}"))


def redact(value: T) -> T:
    """``value`` with every key replaced: strings, and strings inside dicts, lists and
    tuples (an error's details); anything else is returned as it is."""
    if isinstance(value, str):
        return redact_text(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [redact(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)  # type: ignore[return-value]
    return value


def scrub(exc: BaseException) -> None:
    """Redact a foreign exception in place (the SDK's, kept as ``__cause__`` of the
    package's error, so a printed traceback shows no key either)."""
    exc.args = redact(exc.args)
    for attr in ("message", "details"):
        value = getattr(exc, attr, None)
        if value is not None:
            with contextlib.suppress(AttributeError):  # a read-only attribute
                setattr(exc, attr, redact(value))


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its formatted traceback) without any key."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logging's to report, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def guard(target: logging.Logger | logging.Handler) -> None:
    """Add the filter to a logger or handler once."""
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())


for _name in LOGGERS:
    guard(logging.getLogger(_name))
