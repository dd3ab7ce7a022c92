"""What every wrapper exposes of ``EmbedSettings``, read from its fields, and the one table
of the names a framework renames.

A setting's type, default, bounds, environment variables and doc live in ``EmbedSettings``
only. Wrappers take their fields from ``settings()`` (LangChain and LlamaIndex copy them as
pydantic fields with ``model_fields``; Haystack and Chroma take their arguments' defaults
and pass the rest through), so a setting added to ``EmbedSettings`` reaches every wrapper.
A wrapper uses another name only where its framework's convention demands it, and only
as ``RENAMES`` says; ``OMITTED`` says which settings a framework carries otherwise, and
why. Knows nothing of the frameworks themselves: these are names, not imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from gemb2.engine.settings import ENV_VARS, EmbedSettings
from gemb2.errors import ConfigError

Framework = Literal["langchain", "llamaindex", "haystack", "chroma"]
FRAMEWORKS: tuple[Framework, ...] = ("langchain", "llamaindex", "haystack", "chroma")

# core name -> the wrapper's name, where its framework's convention names it otherwise
RENAMES: dict[Framework, dict[str, str]] = {
    # langchain-google-genai's name; ``api_key`` is accepted too (an alias)
    "langchain": {"api_key": "google_api_key"},
    # BaseEmbedding's own field
    "llamaindex": {"model": "model_name"},
    # haystack-core-integrations' google_genai (api="gemini"|"vertex") and OpenAI embedders
    "haystack": {
        "vertexai": "api",
        "project": "vertex_ai_project",
        "location": "vertex_ai_location",
        "base_url": "api_base_url",
    },
    # Chroma's own Google functions; ``model`` and ``dimensions`` are accepted too (aliases)
    "chroma": {"model": "model_name", "dimensions": "dimension", "api_key_env": "api_key_env_var"},
}

# core name -> why the framework has no field of that name (its convention carries it)
OMITTED: dict[Framework, dict[str, str]] = {
    "langchain": {
        "api_key_env": "google_api_key defaults to GOOGLE_API_KEY, then GEMINI_API_KEY, as "
        "LangChain's partner packages read their keys",
    },
    "llamaindex": {
        "api_key": "an __init__ argument kept in the engine, never a field, so to_dict and "
        "to_json cannot hold it; api_key_env names the variable instead",
    },
    "haystack": {
        "api_key_env": "api_key is a haystack Secret, which names its own variables",
        "credentials": "not serialisable: Vertex AI uses Application Default Credentials",
    },
    "chroma": {},
}

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Setting:
    """One ``EmbedSettings`` field as wrappers see it."""

    name: str
    field: FieldInfo  # EmbedSettings' own: never change it, copy it with ``pydantic_field``
    env: tuple[str, ...] = ()

    @property
    def annotation(self) -> Any:
        """The type, with its bounds (``Annotated[int, Ge(1), Le(100)]``)."""
        return self.field.rebuild_annotation()

    @property
    def default(self) -> Any:
        return self.field.get_default(call_default_factory=True)

    @property
    def description(self) -> str | None:
        return self.field.description

    @property
    def constraints(self) -> list[Any]:
        """The bounds (annotated_types ``Ge``, ``Le``, ``Gt``...), as pydantic keeps them."""
        return list(self.field.metadata)

    def pydantic_field(self, **changes: Any) -> Any:
        """A ``Field(...)`` with this setting's default, doc and flags, plus ``changes``
        (e.g. ``alias=`` or ``default_factory=``); its bounds travel in ``annotation``."""
        kwargs: dict[str, Any] = {"description": self.description}
        if self.field.default_factory is not None:
            kwargs["default_factory"] = self.field.default_factory
        else:
            kwargs["default"] = self.field.default
        if self.field.exclude:
            kwargs["exclude"] = True
        if not self.field.repr:
            kwargs["repr"] = False
        if "default_factory" in changes:
            kwargs.pop("default", None)
        if "default" in changes:
            kwargs.pop("default_factory", None)
        kwargs.update(changes)
        return Field(**kwargs)


@cache
def settings() -> Mapping[str, Setting]:
    """Every ``EmbedSettings`` field, in its order (shared: do not change it)."""
    return {
        name: Setting(name, info, ENV_VARS.get(name, ()))
        for name, info in EmbedSettings.model_fields.items()
    }


@cache
def wrapper_names(framework: Framework) -> Mapping[str, str]:
    """core name -> the framework's name, for every setting the framework has a field for."""
    renames, omitted = RENAMES[framework], OMITTED[framework]
    return {name: renames.get(name, name) for name in settings() if name not in omitted}


@cache
def core_names(framework: Framework) -> Mapping[str, str]:
    """The framework's name -> core name (the inverse of ``wrapper_names``)."""
    return {wrapper: core for core, wrapper in wrapper_names(framework).items()}


def to_core(
    framework: Framework, values: Mapping[str, Any], aliases: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings among ``values`` (named as the framework names them, or by an alias in
    ``aliases``), under the core's names; other keys are left out."""
    names = dict(core_names(framework))
    names.update({alias: names[wrapper] for alias, wrapper in (aliases or {}).items()})
    return {names[key]: value for key, value in values.items() if key in names}


def from_core(
    framework: Framework, settings: EmbedSettings, exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """An ``EmbedSettings``'s values under the framework's names (``exclude``: core names)."""
    skip = set(exclude)
    return {
        wrapper: getattr(settings, core)
        for core, wrapper in wrapper_names(framework).items()
        if core not in skip
    }


def pydantic_fields(
    framework: Framework, changes: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, tuple[Any, Any]]:
    """``{name: (annotation, Field)}`` of the framework's setting fields, for ``create_model``;
    ``changes`` (by the framework's names) adjusts a field, e.g. an env default factory."""
    specs = settings()
    return {
        wrapper: (
            specs[core].annotation,
            specs[core].pydantic_field(**(changes or {}).get(wrapper, {})),
        )
        for core, wrapper in wrapper_names(framework).items()
    }


def settings_base(
    framework: Framework,
    base: type[M],
    *,
    name: str,
    module: str,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
) -> type[M]:
    """A pydantic base class: ``base`` plus the framework's setting fields. A wrapper class
    subclasses it and adds its own fields, config and methods."""
    model: type[M] = create_model(  # type: ignore[call-overload]
        name, __base__=base, __module__=module, **pydantic_fields(framework, changes)
    )
    model.__doc__ = f"The gemb2 settings as {framework} fields (see gemb2.engine.settings_schema)."
    return model


def core_error(exc: ValidationError) -> ConfigError | None:
    """The ``ConfigError`` of the core's own cross-setting checks behind ``exc`` (an unknown
    model, a dimension out of its range, a Vertex AI only option), if that is what it is."""
    for error in exc.errors():
        found = (error.get("ctx") or {}).get("error")
        if not error["loc"] and isinstance(found, ConfigError):
            return found
    return None


def check(values: Mapping[str, Any]) -> None:
    """Run the core's cross-setting checks on core-named ``values`` before a wrapper takes
    them; raise its ``ConfigError`` (same message as ``EmbedSettings``). A field's own bad
    value is left to the wrapper's copy of the field, which has the same bounds and says
    the same."""
    try:
        EmbedSettings(**values)
    except ValidationError as exc:
        found = core_error(exc)
        if found is not None:
            raise found from None


def build(values: Mapping[str, Any], *, wrap: Callable[[str], str] = str) -> EmbedSettings:
    """``EmbedSettings(**values)``; a refusal is a ``ConfigError``: the core's own when its
    cross-setting checks refused, else ``wrap(str(error))`` with the ``ValidationError`` as
    its cause."""
    try:
        return EmbedSettings(**values)
    except ValidationError as exc:
        found = core_error(exc)
        raise (found if found is not None else ConfigError(wrap(str(exc)))) from exc


def defaults() -> dict[str, Any]:
    """Every setting's default, by core name (no environment is read)."""
    return {name: spec.default for name, spec in settings().items()}
