"""One validated settings object shared by the core, every wrapper and the CLI."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gemb2.engine.limiter_backends import LimiterSetting
from gemb2.errors import ConfigError
from gemb2.model.catalog import DEFAULT_MODEL, Limits, ModelSpec, canonical_model, get_model
from gemb2.model.tasks import Task

API_KEY_ENV_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
# Environment variables that hold a setting, first set one first. The key is read from
# them when not given (here and in every wrapper); LangChain's fields default to all of
# them, as its partner packages do. Wrappers take these names from here, never their own.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "api_key": API_KEY_ENV_VARS,
    "project": ("GOOGLE_CLOUD_PROJECT",),
    "location": ("GOOGLE_CLOUD_LOCATION",),
}
# options the SDK sends on Vertex AI only (it raises ValueError for them on the Developer API)
VERTEX_ONLY = ("auto_truncate", "document_ocr", "audio_track_extraction")


class EmbedSettings(BaseModel):
    """Everything that shapes a request. Secrets are ``SecretStr`` and never printed."""

    # a field's docstring is its description: wrappers copy both (see settings_schema)
    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, use_attribute_docstrings=True
    )

    model: str = DEFAULT_MODEL
    """Model id: ``gemini-embedding-2`` (multimodal) or ``gemini-embedding-001`` (text only,
    another vector space); the retired ``gemini-embedding-2-preview`` is sent as
    ``gemini-embedding-2``, with a warning."""
    dimensions: int | None = Field(
        None, description="output_dimensionality; model default if unset"
    )
    task: Task = "retrieval"
    """What the vectors are for; sets the query/document conditioning of text."""
    normalize: bool = True
    """L2-normalise every vector (below 3072 dimensions the service may not)."""
    batch_size: int = Field(100, ge=1, le=100, description="items per batch call")
    max_concurrency: int = Field(
        16, ge=1, le=256, description="most batch calls in flight (the adaptive window's cap)"
    )
    adaptive_concurrency: bool = True
    """Start 4 calls in flight and grow while answers are clean, up to max_concurrency;
    shrink on 429s, 503s and timeouts. False: always max_concurrency in flight."""
    max_call_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1,
        description="inline media bytes packed into one call (one item over it goes alone)",
    )
    max_inflight_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1,
        description="inline bytes in flight across concurrent calls (a call waits for room)",
    )
    requests_per_minute: float | None = Field(None, gt=0)
    """Pace calls so that no 60 s window holds more; unset: no pacing."""
    tokens_per_minute: float | None = Field(None, gt=0)
    """Pace calls by estimated tokens per 60 s window; unset: no pacing."""
    limiter: LimiterSetting | None = None
    """Where the pacing (and the pause after a 429) is kept, shared by every Embedder and
    process naming the same quota: ``sqlite:///PATH`` (one machine), ``redis://HOST:PORT/DB``
    (many), ``auto`` (a per-user SQLite file) or ``local`` (this Embedder alone); read from
    GEMB2_LIMITER when unset, else local. A password in the URL is shown as <redacted>."""
    max_retries: int = Field(6, ge=0, description="retries after the first attempt")
    backoff_initial: float = Field(1.0, ge=0)
    """First retry wait in seconds (a server's retry delay takes precedence)."""
    backoff_max: float = Field(60.0, ge=0)
    """Longest retry wait in seconds."""
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP request")
    use_video_audio: bool = Field(False, description="apply the shorter limit to videos with audio")
    limits: Limits | None = Field(None, description="override the model's limits")
    auto_truncate: bool | None = Field(
        None, description="Vertex AI only: the service cuts text over the token limit"
    )
    document_ocr: bool | None = Field(
        None, description="Vertex AI only: read the text of scanned PDF pages (OCR)"
    )
    audio_track_extraction: bool | None = Field(
        None,
        description="Vertex AI only: embed a video's audio track too (the shorter video "
        "limit then applies, as with use_video_audio)",
    )

    api_key: SecretStr | None = None
    """Gemini API key; read from GOOGLE_API_KEY, then GEMINI_API_KEY, when not given."""
    api_key_env: str | None = Field(None, description="name of the env var the key came from")
    vertexai: bool = False
    """Use Vertex AI (project, location and Application Default Credentials) instead of a key."""
    project: str | None = None
    """Google Cloud project, for Vertex AI."""
    location: str | None = None
    """Google Cloud location, for Vertex AI (e.g. ``us-central1``)."""
    base_url: str | None = None
    """Endpoint override: a proxy, or the local emulator's URL (a loopback URL needs no key)."""
    api_version: str | None = None
    """API version override (the SDK's default when unset)."""
    credentials: Any = Field(
        None, exclude=True, repr=False, description="google.auth credentials for Vertex AI"
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        """The preview id becomes the GA id (warned once); audio track extraction counts
        the audio, so the shorter video limit applies."""
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("model"), str):
                data["model"] = canonical_model(data["model"])
            if data.get("audio_track_extraction"):
                data["use_video_audio"] = True
        return data

    @model_validator(mode="after")
    def _check(self) -> EmbedSettings:
        spec = get_model(self.model)
        spec.check_dimensions(self.dimensions)
        vertex_only = [n for n in VERTEX_ONLY if getattr(self, n) is not None]
        if vertex_only and not self.vertexai:
            raise ConfigError(
                f"{', '.join(vertex_only)} {'is' if len(vertex_only) == 1 else 'are'} "
                "Vertex AI only (the Gemini Developer API refuses them): pass vertexai=True "
                "with project and location, or leave them unset"
            )
        return self

    @property
    def spec(self) -> ModelSpec:
        return get_model(self.model)

    @property
    def resolved_dimensions(self) -> int:
        return self.spec.check_dimensions(self.dimensions)

    @property
    def resolved_limits(self) -> Limits:
        return self.limits or self.spec.limits

    def resolve_api_key(self) -> tuple[str | None, str | None]:
        """(key, env var name): explicit key first, then GOOGLE_API_KEY, GEMINI_API_KEY."""
        if self.api_key is not None:
            return self.api_key.get_secret_value(), self.api_key_env
        names = (self.api_key_env,) if self.api_key_env else API_KEY_ENV_VARS
        for name in names:
            value = os.environ.get(name)
            if value:
                return value, name
        return None, None

    def with_(self, **changes: Any) -> EmbedSettings:
        """A copy with changes, validated again."""
        data = self.model_dump()
        data.update(changes)
        data["api_key"] = changes.get("api_key", self.api_key)
        data["credentials"] = changes.get("credentials", self.credentials)
        data["limiter"] = changes.get("limiter", self.limiter)  # dumped without its password
        try:
            return EmbedSettings(**data)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
