"""One settings schema: every wrapper's setting fields, defaults and validation are
``gemb2.EmbedSettings``', renamed only as ``settings_schema.RENAMES`` says.

Each wrapper is driven the way its framework is used (keyword arguments, a ``settings``
dict for Haystack, ``**settings`` for Chroma) and judged by the ``EmbedSettings`` it hands
its engine, so the test holds whatever way the wrapper derives its fields.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from haystack.utils import Secret
from pydantic import SecretStr, ValidationError

from gemb2 import ConfigError, EmbedSettings, Limits
from gemb2.engine import settings_schema as schema
from gemb2.engine.settings import API_KEY_ENV_VARS

CORE = EmbedSettings.model_fields
RENAMES: dict[str, dict[str, str]] = dict(schema.RENAMES)
OMITTED = schema.OMITTED
LOOPBACK = "http://127.0.0.1:9"  # a loopback endpoint needs no key; nothing is sent here
VERTEX = {"vertexai": True, "project": "proj", "location": "us-central1"}
VERTEX_ONLY = ("auto_truncate", "document_ocr", "audio_track_extraction")
ROOT = Path(__file__).parents[2]

# A valid value, other than the default, for every setting. A setting added to EmbedSettings
# fails test_every_setting_has_a_sample until it gets one here, and is then checked below.
SAMPLES: dict[str, Any] = {
    "model": "gemini-embedding-001",
    "dimensions": 768,
    "task": "clustering",
    "normalize": False,
    "batch_size": 7,
    "max_concurrency": 3,
    "adaptive_concurrency": False,
    "max_call_bytes": 1024,
    "max_inflight_bytes": 2048,
    "requests_per_minute": 60.0,
    "tokens_per_minute": 1000.0,
    "limiter": "local",  # a file or a server would be opened by every wrapper's engine
    "max_retries": 2,
    "backoff_initial": 0.5,
    "backoff_max": 5.0,
    "timeout": 9.0,
    "use_video_audio": True,
    "limits": Limits(max_images=3),
    "auto_truncate": True,
    "document_ocr": True,
    "audio_track_extraction": True,
    "api_key": SecretStr("AIza-sample-key"),
    "api_key_env": "MY_SAMPLE_KEY",
    "vertexai": True,
    "project": "my-project",
    "location": "europe-west4",
    "base_url": "http://127.0.0.1:9/proxy",
    "api_version": "v1",
    "credentials": object(),
}

# Values EmbedSettings refuses: a field's own bound, a type, and its cross-setting checks.
BAD: list[dict[str, Any]] = [
    {"batch_size": 0},
    {"batch_size": 101},
    {"max_concurrency": 1000},
    {"task": "searching"},
    {"dimensions": 5},
    {"dimensions": 99999},
    {"model": "text-embedding-004"},
    {"timeout": 0},
    {"backoff_initial": -1.0},
    {"requests_per_minute": 0.0},
    {"limiter": "ftp://quota.example/x"},
    {"max_retries": -1},
    {"normalize": "sometimes"},
    {"auto_truncate": True},  # Vertex AI only, on the Developer API
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults are compared with nothing in the environment."""
    for name in (*API_KEY_ENV_VARS, "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)


def renamed(framework: str, core: str) -> str:
    return RENAMES[framework].get(core, core)


def core_name(framework: str, name: str) -> str:
    return {w: c for c, w in RENAMES.get(framework, {}).items()}.get(name, name)


# -- each wrapper: made from core-named values, read back as the EmbedSettings it built ------


def _langchain(values: dict[str, Any]) -> Any:
    from langchain_gemb2 import GeminiEmbeddings

    return GeminiEmbeddings(**{renamed("langchain", k): v for k, v in values.items()})


def _llamaindex(values: dict[str, Any]) -> Any:
    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    # the key is an __init__ argument under the core's name (OMITTED as a field)
    return GeminiMultiModalEmbedding(**{renamed("llamaindex", k): v for k, v in values.items()})


def _haystack(cls_name: str) -> Callable[[dict[str, Any]], Any]:
    def make(values: dict[str, Any]) -> Any:
        cls = _haystack_class(cls_name)
        params = set(inspect.signature(cls.__init__).parameters)
        kwargs: dict[str, Any] = {"api_base_url": LOOPBACK}
        kwargs.update(_required(cls_name))
        settings: dict[str, Any] = {}
        for key, value in values.items():
            name = renamed("haystack", key)
            if key == "api_key":
                value = Secret.from_token(value.get_secret_value())
            elif key == "vertexai":
                value = "vertex" if value else "gemini"
            if name in params:
                kwargs[name] = value
            else:
                settings[key] = value
        return cls(**kwargs, settings=settings or None)

    return make


def _haystack_class(name: str) -> type:
    from haystack_integrations.components.embedders import gemb2 as embedders
    from haystack_integrations.components.retrievers import gemb2 as retrievers

    return getattr(embedders, name, None) or getattr(retrievers, name)


def _chroma(values: dict[str, Any]) -> Any:
    from gemb2.stores.chroma import GeminiEmbeddingFunction

    kwargs: dict[str, Any] = {"base_url": LOOPBACK}
    for key, value in values.items():
        if key == "api_key":
            value = value.get_secret_value()
        kwargs[renamed("chroma", key)] = value
    return GeminiEmbeddingFunction(**kwargs)


def _engine_settings(wrapper: Any) -> EmbedSettings:
    if hasattr(wrapper, "_settings") and callable(wrapper._settings):  # Haystack, before warm-up
        key = None if wrapper.api == "vertex" else wrapper.api_key.resolve_value()
        return wrapper._settings(key)
    return wrapper.embedder.settings


@dataclass(frozen=True)
class Wrapper:
    name: str
    framework: str
    make: Callable[[dict[str, Any]], Any]

    def __str__(self) -> str:
        return self.name


HAYSTACK = [
    "GeminiTextEmbedder",
    "GeminiMediaQueryEmbedder",
    "GeminiDocumentEmbedder",
    "GeminiMatryoshkaRetriever",
]
WRAPPERS = [
    Wrapper("langchain.GeminiEmbeddings", "langchain", _langchain),
    Wrapper("llamaindex.GeminiMultiModalEmbedding", "llamaindex", _llamaindex),
    *(Wrapper(f"haystack.{name}", "haystack", _haystack(name)) for name in HAYSTACK),
    Wrapper("chroma.GeminiEmbeddingFunction", "chroma", _chroma),
]


def reasons(exc: BaseException, framework: str) -> list[tuple[tuple[Any, ...], str, str]]:
    """(setting, error type, message) of each pydantic error behind ``exc``, by core names."""
    while not isinstance(exc, ValidationError):
        assert exc.__cause__ is not None, f"no ValidationError behind {type(exc).__name__}: {exc}"
        exc = exc.__cause__
    return [
        (tuple(core_name(framework, str(p)) for p in e["loc"]), e["type"], e["msg"])
        for e in exc.errors()
    ]


# -- the schema itself -----------------------------------------------------------------------


def test_every_setting_has_a_sample() -> None:
    assert set(SAMPLES) == set(CORE)
    for name, value in SAMPLES.items():
        if name != "credentials":
            assert value != CORE[name].get_default(call_default_factory=True), name


def test_the_schema_is_embed_settings() -> None:
    specs = schema.settings()
    assert list(specs) == list(CORE)
    for name, spec in specs.items():
        assert spec.description, f"{name} has no doc in EmbedSettings"
        assert spec.default == CORE[name].get_default(call_default_factory=True)
        assert spec.constraints == CORE[name].metadata
    assert specs["api_key"].env == API_KEY_ENV_VARS == ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    assert specs["batch_size"].constraints  # bounds are there to copy
    for framework in schema.FRAMEWORKS:
        assert set(RENAMES[framework]) <= set(CORE), framework
        assert set(OMITTED[framework]) <= set(CORE), framework


def test_api_key_env_vars_are_defined_once() -> None:
    """The key's variables are the core's in every wrapper, never a copy of them."""
    defined = []
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            if any(isinstance(t, ast.Name) and t.id == "API_KEY_ENV_VARS" for t in targets):
                defined.append(path.relative_to(ROOT / "src").as_posix())
    assert defined == ["gemb2/engine/settings.py"]


# -- fields: every setting reaches the engine, under the framework's name ------------------


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=str)
def test_every_setting_reaches_the_core(wrapper: Wrapper) -> None:
    """Each setting the framework has (all but its OMITTED ones), given alone under the
    framework's name, is the value the wrapper's engine gets."""
    for name, value in SAMPLES.items():
        if name in OMITTED[wrapper.framework]:
            continue
        given = {name: value}
        if name in VERTEX_ONLY:
            given = {**VERTEX, **given}
        got = getattr(_engine_settings(wrapper.make(given)), name)
        assert got == value, f"{wrapper}: {renamed(wrapper.framework, name)}={value!r} -> {got!r}"


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_pydantic_fields_are_the_cores(framework: str) -> None:
    """LangChain's and LlamaIndex's fields are EmbedSettings' fields: names (as renamed),
    types, bounds, defaults and docs; only the framework's own fields are added."""
    if framework == "langchain":
        from langchain_gemb2 import GeminiEmbeddings as cls

        own = {"cache"}
    else:
        from llama_index.core.embeddings import MultiModalEmbedding

        from llamaindex_gemb2 import GeminiMultiModalEmbedding as cls

        own = (set(MultiModalEmbedding.model_fields) - {"model_name"}) | {
            "overlap_seconds",
            "interleave_text",
        }
    fields = cls.model_fields
    settings = {core_name(framework, n) for n in fields if n not in own}
    assert settings == set(CORE) - set(OMITTED[framework])
    for core in settings:
        mine, theirs = fields[renamed(framework, core)], CORE[core]
        assert mine.annotation == theirs.annotation, core
        assert mine.metadata == theirs.metadata, core  # bounds
        assert mine.description == theirs.description, core
        assert mine.get_default(call_default_factory=True) == theirs.get_default(
            call_default_factory=True
        ), core


@pytest.mark.parametrize("cls_name", HAYSTACK)
def test_haystack_arguments_are_core_settings_with_core_defaults(cls_name: str) -> None:
    """A Haystack component's setting arguments have the core's defaults (``api`` is
    ``vertexai``); every other setting goes in ``settings``, and only there."""
    cls = _haystack_class(cls_name)
    params = inspect.signature(cls.__init__).parameters
    arguments = {core: renamed("haystack", core) for core in CORE} | {"api_key": "api_key"}
    arguments = {c: n for c, n in arguments.items() if n in params}
    assert {"model", "dimensions", "task", "timeout", "max_retries", "base_url"} <= set(arguments)
    assert params["api_key"].default.to_dict()["env_vars"] == list(API_KEY_ENV_VARS)
    assert params["api"].default == ("vertex" if CORE["vertexai"].default else "gemini")
    assert params["settings"].default is None
    for core, name in arguments.items():
        if core not in ("api_key", "vertexai"):
            assert params[name].default == CORE[core].default, name
            # the core's type; None also means the core's default, as older pipelines hold
            assert params[name].annotation in (CORE[core].annotation, CORE[core].annotation | None)
    for core, name in arguments.items():
        if core == "api_key":
            continue  # refused in settings too, as tests/haystack checks
        with pytest.raises(ConfigError, match=f"{core}.*pass {name}=") as info:
            cls(**_required(cls_name), settings={core: SAMPLES[core]})
        assert cls_name in str(info.value)


def _required(cls_name: str) -> dict[str, Any]:
    if cls_name == "GeminiMatryoshkaRetriever":
        return {"chroma_path": "/tmp/db", "collection_name": "c", "side_store_path": "/tmp/s"}
    return {}


# -- defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=str)
def test_defaults_are_the_cores(wrapper: Wrapper) -> None:
    """Made with nothing but an endpoint, a wrapper's engine has EmbedSettings' defaults."""
    got = _engine_settings(wrapper.make({"base_url": LOOPBACK})).model_dump()
    want = EmbedSettings(base_url=LOOPBACK).model_dump()
    if wrapper.framework == "chroma":  # Chroma names the variable it reads the key from
        assert got.pop("api_key_env") == "GEMINI_API_KEY"
        want.pop("api_key_env")
    assert got == want


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=lambda b: "-".join(f"{k}={v}" for k, v in b.items()))
@pytest.mark.parametrize("wrapper", WRAPPERS, ids=str)
def test_refused_as_the_core_refuses(wrapper: Wrapper, bad: dict[str, Any]) -> None:
    """The same values are refused, with the same errors, as EmbedSettings refuses them."""
    with pytest.raises(ValidationError) as core:
        EmbedSettings(**bad)
    with pytest.raises(ValueError) as theirs:
        wrapper.make(bad)
    assert reasons(theirs.value, wrapper.framework) == reasons(core.value, "core")
    if wrapper.framework in ("haystack", "chroma"):
        assert isinstance(theirs.value, ConfigError)


@pytest.mark.parametrize("bad", BAD, ids=lambda b: "-".join(f"{k}={v}" for k, v in b.items()))
def test_langchain_assignment_is_refused_as_the_core_refuses(bad: dict[str, Any]) -> None:
    """A refused change leaves the fields and the engine as they were."""
    from langchain_gemb2 import GeminiEmbeddings

    emb = GeminiEmbeddings(base_url=LOOPBACK, dimensions=768)
    engine, before = emb.embedder, emb.model_dump()
    ((name, value),) = bad.items()
    with pytest.raises(ValidationError) as core:
        EmbedSettings(**bad)
    with pytest.raises(ValidationError) as theirs:
        setattr(emb, name, value)
    assert reasons(theirs.value, "langchain") == reasons(core.value, "core")
    assert emb.model_dump() == before
    assert emb.embedder is engine


# -- what each framework persists ------------------------------------------------------------


def test_chroma_persists_the_settings_it_was_given() -> None:
    """A collection reopened from its config embeds as it was created to."""
    import json

    from gemb2.stores.chroma import GeminiEmbeddingFunction

    ef = _chroma(
        {"normalize": False, "max_concurrency": 2, "limits": Limits(max_images=3), "timeout": 9.0}
    )
    config = json.loads(json.dumps(ef.get_config()))
    assert {k: config[k] for k in ("normalize", "max_concurrency", "timeout")} == {
        "normalize": False,
        "max_concurrency": 2,
        "timeout": 9.0,
    }
    assert "batch_size" not in config  # a setting left at its default is not written
    again = GeminiEmbeddingFunction.build_from_config(config)
    assert again.get_config() == config
    s = again.embedder.settings
    assert (s.normalize, s.max_concurrency, s.timeout) == (False, 2, 9.0)
    assert s.limits == Limits(max_images=3)


def test_the_docs_list_every_rename() -> None:
    """The docs' table of names (docs/settings.md) is RENAMES: each renamed setting's row
    names it in its framework's column."""
    section = (ROOT / "docs" / "settings.md").read_text()
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 5 else None
        if match:
            rows[match.group(1)] = dict(zip(schema.FRAMEWORKS, cells[1:], strict=True))
    for framework, renames in RENAMES.items():
        for core, name in renames.items():
            assert f"`{name}`" in rows[core][framework], (framework, core, name)
    for framework, omitted in OMITTED.items():
        for core in omitted:
            assert rows[core][framework], (framework, core)
