"""A model's service facts as one file: what the package assumes and the emulator serves.

Google's material disagrees on several facts gemb2 depends on (audio 80 s or 180 s, video
120 s or 128 s, whether outputs below 3072 come back normalised, whether ``taskType``
changes anything, whether Batch Mode takes media). A ``Profile`` records one reading of
them: the package's defaults (``DEFAULT``, today's behaviour), a bundled alternative, or
what ``gemb2 doctor`` measured against the real service. The package takes its limits
from one (``EmbedSettings(limits=load_profile("p.json").limits)``, ``--limits FILE`` on the
CLI); the emulator serves one (``gemb2 emulator --profile FILE``). JSON, or TOML.
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gemb2.errors import ConfigError
from gemb2.model.catalog import DEFAULT_MODEL, Limits, get_model

PROFILE_FORMAT = 1
MAX_DIMENSIONS = 3072

# each error text's placeholders, filled by whoever answers with it (the emulator)
_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "too_many_requests": frozenset({"max", "got"}),
    "model_not_found": frozenset({"model", "version", "method"}),
    "resource_exhausted": frozenset(),
    "internal": frozenset(),
    "unavailable": frozenset(),
    "api_key_invalid": frozenset(),
}


class ErrorTexts(BaseModel):
    """The messages of the service's error answers, with ``{placeholders}``.

    Clients must not parse them (gemb2 reads codes, statuses and details), but a user's
    log lines and tests see them; a profile measured by ``gemb2 doctor`` holds Google's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    too_many_requests: str = Field(
        "* BatchEmbedContentsRequest.requests: at most {max} requests can be in one batch "
        "(got {got})",
        description="400 for a batch call over the limit; {max}, {got}",
    )
    model_not_found: str = Field(
        "models/{model} is not found for API version {version}, or is not supported for "
        "{method}. Call ListModels to see the list of available models and their supported "
        "methods.",
        description="404 for an unknown model; {model}, {version}, {method}",
    )
    resource_exhausted: str = Field(
        "Resource has been exhausted (e.g. check quota).",
        description="429 (the retry delay is appended, and sent as RetryInfo)",
    )
    internal: str = Field(
        "An internal error has occurred. Please retry or report in the forum.", description="500"
    )
    unavailable: str = Field("The model is overloaded. Please try again later.", description="503")
    api_key_invalid: str = Field(
        "API key not valid. Please pass a valid API key.", description="403 for a refused key"
    )

    @field_validator("*")
    @classmethod
    def _known_placeholders(cls, value: str, info: Any) -> str:
        """A template naming an unknown placeholder fails when the profile loads, not when
        the emulator first answers with it."""
        allowed = _PLACEHOLDERS[info.field_name]
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(
                f"not a valid template ({exc}); write a literal brace as {{{{"
            ) from exc
        unknown = used - allowed
        if unknown:
            names = ", ".join(f"{{{n}}}" for n in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {sorted(unknown)}; allowed: {names}")
        return value


class Profile(BaseModel):
    """One model's service facts. Fields left out of a file take the defaults; ``limits``
    left out (or in part) take the catalog's limits of ``model``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = Field(PROFILE_FORMAT, description="version of this file's layout")
    name: str = Field("default", min_length=1, description="a short name for reports")
    description: str = Field("", description="where these facts come from")
    model: str = Field(DEFAULT_MODEL, description="the model these facts describe")
    measured: dict[str, Any] | None = Field(
        None, description="when, where and how gemb2 doctor measured them (None: not measured)"
    )
    limits: Limits = Field(default_factory=Limits, description="per-item input limits")
    max_requests_per_call: int = Field(
        100, ge=1, description="requests one batchEmbedContents call may carry"
    )
    normalized_below_3072: bool = Field(
        False, description="the service returns unit vectors when outputDimensionality < 3072"
    )
    task_type_changes_vector: bool = Field(
        False, description="the taskType field changes a text's vector"
    )
    prefix_changes_vector: bool = Field(
        True, description="a task prefix ('task: ... | query: ...') changes a text's vector"
    )
    batch_accepts_media: bool = Field(True, description="Batch Mode embeds items holding media")
    errors: ErrorTexts = Field(default_factory=ErrorTexts, description="error answers' texts")

    @model_validator(mode="before")
    @classmethod
    def _limits_of_the_model(cls, data: Any) -> Any:
        """Limits not given are the catalog's for this profile's model."""
        if not isinstance(data, dict):
            return data
        model = data.get("model", DEFAULT_MODEL)
        try:
            spec = get_model(str(model))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        given = data.get("limits")
        if isinstance(given, Limits):
            return data
        if given is None or isinstance(given, dict):
            merged = {**spec.limits.model_dump(), **(given or {})}
            per_call = data.get("max_requests_per_call")
            if "max_batch" not in (given or {}) and isinstance(per_call, int) and per_call >= 1:
                merged["max_batch"] = min(merged["max_batch"], per_call)  # the package's batches
            data = {**data, "model": spec.id, "limits": merged}
        return data

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != PROFILE_FORMAT:
            raise ValueError(
                f"format {value} is not known to this gemb2 (it reads {PROFILE_FORMAT})"
            )
        return value

    def to_json(self) -> str:
        """The file's text: every field written, so a reader needs no defaults of ours."""
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    def facts(self) -> dict[str, Any]:
        """The measurable facts, as ``gemb2 doctor --json`` reports them."""
        lim = self.limits
        return {
            "normalized_below_3072": self.normalized_below_3072,
            "task_type_changes_vector": self.task_type_changes_vector,
            "prefix_changes_vector": self.prefix_changes_vector,
            "max_requests_per_call": self.max_requests_per_call,
            "batch_accepts_media": self.batch_accepts_media,
            "limits": {
                "max_images": lim.max_images,
                "max_pdf_pages": lim.max_pdf_pages,
                "max_audio_seconds": lim.max_audio_seconds,
                "max_video_seconds": lim.max_video_seconds,
            },
        }


DEFAULT = Profile(
    name="default",
    description="gemb2's defaults: Google's published figures, the stricter where sources "
    "disagree (audio 80 s, video 120 s); outputs below 3072 not normalised by the service "
    "(launch notes); taskType ignored by gemini-embedding-2",
)

# Bundled readings of the disputed facts, by name (a file path works wherever a name does).
BUNDLED: dict[str, Profile] = {
    "default": DEFAULT,
    "reported-ga": Profile(
        name="reported-ga",
        description="what later material reports of the GA model: Google's embeddings page "
        "(outputs below 3072 normalised by the service) and third-party docs and MTEB's "
        "implementation (audio up to 180 s); the rest as the defaults",
        limits={"max_audio_seconds": 180.0},
        normalized_below_3072=True,
    ),
}


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise ConfigError(
                    f"profile {path}: reading TOML on Python 3.10 needs `pip install tomli`; "
                    "or write the profile as JSON"
                ) from None
        return tomllib.loads(text)
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def load_profile(source: str | Path | Profile | None = None) -> Profile:
    """A bundled profile by name (``"default"``, ``"reported-ga"``), or a JSON/TOML file.

    Raises ``ConfigError`` with one line naming the file and what is wrong with it."""
    if isinstance(source, Profile):
        return source
    if source is None:
        return DEFAULT
    if isinstance(source, str) and source in BUNDLED:
        return BUNDLED[source]
    path = Path(source)
    if not path.is_file():
        raise ConfigError(
            f"profile {str(source)!r} is neither a file nor a bundled profile "
            f"({', '.join(sorted(BUNDLED))})"
        )
    try:
        return Profile.model_validate(_read(path))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"profile {path}: {problems}") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # JSON/TOML decode errors
        raise ConfigError(f"profile {path}: cannot read it: {exc}") from None


def load_limits(source: str | Path | Profile | None = None, model: str | None = None) -> Limits:
    """The limits of a profile, checked to describe ``model`` (when given): limits measured
    for one model are wrong for another."""
    profile = load_profile(source)
    if model is not None and get_model(model).id != profile.model:
        raise ConfigError(
            f"profile {profile.name!r} describes {profile.model}, not {get_model(model).id}: "
            "its limits do not apply"
        )
    return profile.limits
