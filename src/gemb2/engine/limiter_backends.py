"""One quota, many workers: which rate limiter an Embedder uses, and the setting naming it.

Gemini's limits belong to a Google Cloud project and model, not to a process: four
``gemb2 index`` processes that each pace alone send four times the quota together.
``limiter_for(settings)`` builds the engine's limiter: the in-process
``ratelimit.RateLimiter``, or a ``shared_limiter.SharedLimiter`` whose bookings and pauses
(after a 429, ``throttled``) live in a store every sharer sees, when ``settings.limiter``
(or the ``GEMB2_LIMITER`` environment variable) names one:

- ``sqlite:///PATH`` (SQLAlchemy's spelling: ``sqlite:////abs/path`` is absolute): a file,
  for the processes of one machine, no server. ``auto``: the per-user file
  ``$XDG_CACHE_HOME/gemb2/limiter.sqlite`` (what the ``gemb2`` command uses by default).
- ``redis://[:PASSWORD@]HOST:PORT/DB`` (or ``rediss://``): for many machines.
- ``local``: this Embedder alone (the library's default: an Embedder cannot know who else
  spends its quota, and a file per test or per short script would be a surprise).

Sharers meet on a quota name: a hash of the model and the credentials' identity (the key,
or Vertex AI's project and location, and the endpoint), or ``?quota=NAME`` in the URL
(machines whose keys differ but belong to one project). A password in a URL never reaches
a repr, a message or a serialised form: they show ``<redacted>``, and a URL read back that
way takes the full one from ``GEMB2_LIMITER``.

The stores (and pyrate-limiter, which takes most of a second to import) load only when a
shared limiter is built.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, PlainSerializer

from gemb2 import redaction
from gemb2.engine.ratelimit import RateLimiter
from gemb2.errors import ConfigError

if TYPE_CHECKING:
    from gemb2.engine.settings import EmbedSettings

log = logging.getLogger("gemb2")

ENV_VAR = "GEMB2_LIMITER"
LOCAL, AUTO = "local", "auto"
CHOICES = "'local', 'auto', sqlite:///PATH or redis://HOST:PORT/DB"


class LimiterURL(str):
    """A limiter URL whose repr hides its password; the value keeps it, to connect."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redaction.redact_url(self))


def check_url(value: str) -> LimiterURL:
    """The setting's validator: one of the known forms, or a ConfigError naming them. A
    password in the URL is registered with ``redaction``, so no message shows it."""
    url = value.strip()
    if url in (LOCAL, AUTO):
        return LimiterURL(url)
    parts = urlsplit(url)
    shown = redaction.redact_url(url)
    extra = sorted(set(parse_qs(parts.query)) - {"quota"})
    if extra:
        raise ConfigError(f"limiter {shown!r}: unknown option {extra[0]!r} (only ?quota=NAME)")
    if parts.scheme == "sqlite":
        if not sqlite_path(url):
            raise ConfigError(f"limiter {shown!r}: no file named; expected sqlite:///PATH")
    elif parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ConfigError(f"limiter {shown!r}: no host; expected redis://HOST:PORT/DB")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(f"limiter {shown!r}: the database must be a number, got {db!r}")
        if parts.password and parts.password != redaction.REDACTED:
            redaction.register(parts.password)
    else:
        raise ConfigError(f"limiter {shown!r}: expected {CHOICES}")
    return LimiterURL(url)


# the type of ``EmbedSettings.limiter``: checked; shown and serialised without a password
LimiterSetting = Annotated[
    str, AfterValidator(check_url), PlainSerializer(redaction.redact_url, return_type=str)
]


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///PATH``, its query left off ('' if it names none)."""
    rest = url.split("?", 1)[0]
    return rest[len("sqlite:///") :] if rest.startswith("sqlite:///") else ""


def default_path() -> Path:
    """The per-user file ``auto`` names: shared by every gemb2 process of this user."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gemb2" / "limiter.sqlite"


def resolve(limiter: str | None) -> str:
    """Where a limiter lives: the setting, else ``GEMB2_LIMITER``, else ``local``; ``auto``
    becomes the per-user file. A URL whose password was redacted (read back from a
    persisted config) takes the full URL from ``GEMB2_LIMITER``."""
    env = os.environ.get(ENV_VAR, "").strip()
    url = str(limiter or "") or env or LOCAL
    if url == AUTO:
        return f"sqlite:///{default_path()}"
    if url == LOCAL:
        return url
    if urlsplit(url).password == redaction.REDACTED:
        if env and redaction.redact_url(env) == url:
            url = env
        else:
            raise ConfigError(
                f"limiter {url!r}: its password is not stored with the settings; set "
                f"{ENV_VAR} to the full URL"
            )
    return str(check_url(url))


def quota_name(settings: EmbedSettings, url: str) -> str:
    """What the sharers of one quota have in common: ``?quota=NAME``, else a hash of the
    model, the endpoint and the credentials' identity (never the key itself)."""
    given = parse_qs(urlsplit(url).query).get("quota")
    if given:
        return given[0]
    key, _ = settings.resolve_api_key()
    who = (
        ("vertex", settings.project or "", settings.location or "")
        if settings.vertexai
        else ("gemini", key or "")
    )
    ident = "\0".join((settings.spec.id, settings.base_url or "", *who))
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def limiter_for(settings: EmbedSettings) -> RateLimiter:
    """The Embedder's limiter: in-process, or shared through the store the settings name
    (each worker's first call need not wait its turn: a burst of ``max_concurrency``)."""
    url = resolve(settings.limiter)
    rpm, tpm = settings.requests_per_minute, settings.tokens_per_minute
    if url == LOCAL:
        return RateLimiter(rpm, tpm, burst=settings.max_concurrency)
    from gemb2.engine import shared_limiter

    try:
        store = shared_limiter.store_for(url, sqlite_path(url))
    except ConfigError as exc:
        named = str(settings.limiter or "") or os.environ.get(ENV_VAR, "").strip()
        if named != AUTO:
            raise
        # the per-user default is a convenience: without it, this process paces alone
        log.warning("%s; pacing this process alone", exc)
        return RateLimiter(rpm, tpm, burst=settings.max_concurrency)
    name = quota_name(settings, url)
    return shared_limiter.SharedLimiter(store, name, rpm, tpm, burst=settings.max_concurrency)
