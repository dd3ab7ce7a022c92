"""What every gemb2 Haystack component shares: its settings arguments, warm-up, usage
reporting and serialisation.

The arguments follow haystack-core-integrations' ``google_genai`` components (``api_key``,
``api``, ``vertex_ai_project``, ``vertex_ai_location``, ``model``, ``timeout``,
``max_retries``) and its OpenAI embedders (``dimensions``, ``api_base_url``); their defaults
and docs are ``gemb2.EmbedSettings``', renamed as ``gemb2.engine.settings_schema.RENAMES``
says; every other setting goes in ``settings``, under the core's name. A component declares
only its own arguments and takes these as ``**params``: ``__init_subclass__`` adds them to
its signature, so ``to_dict`` (the signature's arguments, no more) and ``from_dict`` are
written once, here.
"""

import inspect
from typing import TYPE_CHECKING, Any, Literal, TypedDict, get_args, get_origin, get_type_hints

from haystack import default_from_dict, default_to_dict
from haystack.utils import Secret
from pydantic import SecretStr

from gemb2 import ConfigError, Embedder, EmbedSettings, Usage
from gemb2.engine import settings_schema as schema
from gemb2.engine.settings import API_KEY_ENV_VARS
from gemb2.model.tasks import Task
from gemb2.redaction import redact_url
from gemb2.transport.genai import genai_client

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

# The public import path; also the module Haystack records in serialised pipelines.
INTEGRATION_MODULE = "haystack_integrations.components.embedders.gemb2"
_APIS = {"gemini": False, "vertex": True}  # api= is Haystack's spelling of vertexai=


def default_api_key() -> Secret:
    """The key from the core's variables (GOOGLE_API_KEY, then GEMINI_API_KEY), serialised
    as their names."""
    return Secret.from_env_var(list(API_KEY_ENV_VARS), strict=False)


class GeminiParams(TypedDict, total=False):
    """The arguments every gemb2 Haystack component takes besides its own."""

    api_key: Secret
    api: Literal["gemini", "vertex"]
    vertex_ai_project: str | None
    vertex_ai_location: str | None
    model: str
    dimensions: int | None
    task: Task
    api_base_url: str | None
    timeout: float | None  # None, as older saved pipelines hold: the core's default
    max_retries: int | None
    settings: dict[str, Any] | None
    embedder: Embedder | None


def _defaults() -> dict[str, Any]:
    core, names = schema.defaults(), schema.core_names("haystack")
    out = {name: core[names[name]] for name in GeminiParams.__annotations__ if name in names}
    out.update(
        api_key=default_api_key(),
        api=next(api for api, vertex in _APIS.items() if vertex == core["vertexai"]),
        settings=None,
        embedder=None,
    )
    return out


DEFAULTS: dict[str, Any] = _defaults()

_DOCS = {
    "api_key": "The Gemini API key; defaults to the `GOOGLE_API_KEY` or `GEMINI_API_KEY` "
    "environment variable. Serialised as the variable's name, never its value. Not needed "
    'with `api="vertex"` (Application Default Credentials) or a loopback `api_base_url`.',
    "api": '`"gemini"` (Gemini Developer API) or `"vertex"` (Vertex AI).',
    "settings": "Further `gemb2.EmbedSettings` fields by their names, e.g. "
    '`{"max_concurrency": 8, "requests_per_minute": 1500}`, or the Vertex AI only '
    "`auto_truncate`, `document_ocr`, `audio_track_extraction`. Not the key, and not a "
    "setting this component takes as an argument.",
    "embedder": "A `gemb2.Embedder` to use as it is (e.g. one on "
    "`gemb2.testing.FakeTransport` in unit tests); `to_dict` leaves it out.",
}


def _common_doc() -> str:
    """The ``:param`` lines of the shared arguments: the core's docs and defaults."""
    specs, names = schema.settings(), schema.core_names("haystack")
    lines = []
    for name in GeminiParams.__annotations__:
        doc = _DOCS.get(name)
        if doc is None:
            spec = specs[names[name]]
            text = " ".join((spec.description or "").split()).rstrip(".")
            choices = (
                get_args(spec.field.annotation)
                if get_origin(spec.field.annotation) is Literal
                else ()
            )
            if choices:
                text += ": " + ", ".join(f"`{c}`" for c in choices)
            doc = f"{text} (default `{spec.default!r}`)."
        lines.append(f":param {name}: {doc}")
    return "\n        ".join(lines)


def _signature(init: Any) -> inspect.Signature:
    """``init``'s own arguments, then the shared ones (its ``**params``) with their defaults."""
    own = [
        p
        for name, p in inspect.signature(init).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD and name not in GeminiParams.__annotations__
    ]
    hints = get_type_hints(GeminiParams)
    shared = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS[name], annotation=hints[name]
        )
        for name in GeminiParams.__annotations__
    ]
    return inspect.Signature([*own, *shared])


def init_names(cls: type) -> list[str]:
    """The component's ``__init__`` arguments: its whole serialised state."""
    init = cls.__init__  # type: ignore[misc]
    return [n for n in inspect.signature(init).parameters if n != "self"]


class GeminiComponent:
    """Shared settings arguments, warm-up, usage reporting and serialisation."""

    api_key: Secret
    api: Literal["gemini", "vertex"]
    model: str
    settings: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            init.__signature__ = _signature(init)
            if init.__doc__ and "%s" in init.__doc__:
                init.__doc__ = init.__doc__.replace("%s", _common_doc(), 1)

    def _init_shared(self, **params: "Unpack[GeminiParams]") -> None:
        """Set the shared arguments (a subclass's ``__init__`` sets its own first, then calls
        this: Haystack's ``@component`` makes a new class, so ``super()`` cannot be used) and
        check every setting now, not at the first run."""
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        values: dict[str, Any] = {**DEFAULTS, **params}
        if values["api"] not in _APIS:
            raise ConfigError(f"api must be 'gemini' or 'vertex', got {values['api']!r}")
        if not isinstance(values["api_key"], Secret):
            raise ConfigError("api_key must be a haystack Secret (Secret.from_env_var(...))")
        # a given engine (e.g. on gemb2.testing.FakeTransport) is used as it is; to_dict
        # leaves it out, so a serialised pipeline builds its own from the settings
        self._embedder: Embedder | None = values.pop("embedder")
        values["settings"] = dict(values["settings"] or {})
        for name, value in values.items():
            setattr(self, name, value)
        self._check_settings_dict()
        self._settings(None)

    def _check_settings_dict(self) -> None:
        """A setting has one place: an argument when the component has one, else ``settings``."""
        keys = set(self.settings)
        if keys & {"api_key", "api_key_env"}:
            raise ConfigError("pass the key as api_key=Secret..., not inside settings")
        if "credentials" in keys:
            raise ConfigError(
                f"settings cannot hold credentials: {schema.OMITTED['haystack']['credentials']}"
            )
        arguments = {
            core: name
            for name, core in schema.core_names("haystack").items()
            if name in init_names(type(self))
        }
        clash = sorted(keys & set(arguments))
        if clash:
            raise ConfigError(
                f"settings holds {clash[0]!r}, an argument of {type(self).__name__}: pass "
                f"{arguments[clash[0]]}=... instead"
            )

    def _settings(self, key: str | None) -> EmbedSettings:
        """The core's settings: ``settings``, then every argument that is a setting."""
        values: dict[str, Any] = dict(self.settings)
        core_defaults, names = schema.defaults(), schema.core_names("haystack")
        for name in init_names(type(self)):
            core = names.get(name)
            if core is None or core == "api_key":
                continue
            value = getattr(self, name)
            if core == "vertexai":
                value = _APIS[value]
            elif value is None and core_defaults[core] is not None:
                continue  # None: the core's default
            values[core] = value
        values["api_key"] = SecretStr(key) if key else None
        name = type(self).__name__
        return schema.build(values, wrap=lambda text: f"invalid {name} settings: {text}")

    def to_dict(self) -> dict[str, Any]:
        """Serialise the init parameters; the key only as the names of its env vars."""
        params: dict[str, Any] = {}
        for name in init_names(type(self)):
            if name == "embedder":
                continue
            value = getattr(self, name)
            if name == "api_key":
                value = value.to_dict()
            elif name == "settings":
                # a limiter URL's password is not serialised (read back: GEMB2_LIMITER's)
                value = {
                    k: redact_url(v) if k == "limiter" and isinstance(v, str) else v
                    for k, v in value.items()
                }
                value = value or None
            params[name] = value
        return default_to_dict(self, **params)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Self":
        """Rebuild from `to_dict` output."""
        return default_from_dict(cls, data)

    def warm_up(self) -> None:
        """Resolve the key and build the client once; later calls do nothing."""
        if self._embedder is None:
            key = self.api_key.resolve_value() if self.api != "vertex" else None
            embedder = Embedder(self._settings(key))
            # fail here, not mid-pipeline, on missing credentials
            _ = genai_client(embedder.transport)
            self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The warmed-up engine (warms up on first use)."""
        self.warm_up()
        assert self._embedder is not None
        return self._embedder

    def close(self) -> None:
        """Release the HTTP client; the next run warms up again."""
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    async def close_async(self) -> None:
        """Release the HTTP clients, the async one too when the engine can."""
        if self._embedder is not None:
            aclose = getattr(self._embedder, "aclose", None)
            if aclose is not None:
                await aclose()
            else:
                self._embedder.close()
            self._embedder = None

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model}

    def _meta(self, before: Usage, failed: list[dict[str, str]] | None = None) -> dict[str, Any]:
        embedder = self.embedder
        meta: dict[str, Any] = {
            "model": embedder.model,
            "dimensions": embedder.dimensions,
            "usage": embedder.usage.since(before).as_dict(),
        }
        if failed is not None:
            meta["failed"] = failed
        return meta
