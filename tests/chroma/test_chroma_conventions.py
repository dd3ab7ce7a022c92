"""GeminiEmbeddingFunction as Chroma's docs use embedding functions: Chroma's own setting
names (``model_name``, ``dimension``, ``api_key_env_var``), its default key variable, old
persisted configs, and a collection reopened in a new process with ``get_collection``."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

try:  # Chroma's Gemini function, in the chromadb releases that have it
    from chromadb.utils.embedding_functions.google_embedding_function import (
        GoogleGeminiEmbeddingFunction as ChromaGoogleFunction,
    )
except ImportError:  # older releases (the lowest we support): its Generative AI one
    from chromadb.utils.embedding_functions.google_embedding_function import (  # type: ignore[assignment]
        GoogleGenerativeAiEmbeddingFunction as ChromaGoogleFunction,
    )

from gemb2 import ConfigError, ModelMismatchError
from gemb2.stores.chroma import NAME, GeminiEmbeddingFunction, open_collection
from gemb2.testing.emulator import Emulator

SECRET = "AIzaSy-CHROMA-EXPLICIT-KEY-77"
ENV_KEY = "AIzaSy-SOME-OTHER-KEY-IN-THE-ENVIRONMENT"
CHROMA_PAGE = Path(__file__).parents[2] / "docs" / "chroma.md"
DOCS = ["volcanoes erupt lava", "honeybees make honey", "glaciers carve valleys"]
IDS = ["volcano", "bees", "glacier"]


def child(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (nothing imported) and read its JSON answer."""
    full = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- item 12: Chroma's names and default key variable ------------------------------------------


def test_takes_the_settings_of_chromas_google_function(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every setting Chroma's Google function has, under its name, works here."""
    chroma_params = set(inspect.signature(ChromaGoogleFunction.__init__).parameters)
    ours = set(inspect.signature(GeminiEmbeddingFunction.__init__).parameters)
    assert chroma_params - {"self"} <= ours
    monkeypatch.setenv("MY_GEMINI_KEY", SECRET)
    ef = GeminiEmbeddingFunction(
        model_name="gemini-embedding-2",
        task_type="RETRIEVAL_DOCUMENT",
        dimension=768,
        api_key_env_var="MY_GEMINI_KEY",
        vertexai=False,
        project=None,
        location=None,
        base_url=emulator.base_url,
    )
    assert (ef.model_name, ef.dimension, ef.api_key_env_var) == (
        "gemini-embedding-2",
        768,
        "MY_GEMINI_KEY",
    )
    assert ef.embedder.settings.resolve_api_key() == (SECRET, "MY_GEMINI_KEY")
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    collection = client.create_collection("docs", embedding_function=ef)
    collection.add(ids=IDS, documents=DOCS)
    got = collection.get(ids=["bees"], include=["embeddings"])
    assert len(got["embeddings"][0]) == 768
    assert collection.query(query_texts=["where honey comes from"], n_results=1)["ids"] == [
        ["bees"]
    ]
    assert emulator.stats.requests == 2
    assert emulator.stats.dimensions == {768: 4}
    config = collection.configuration_json["embedding_function"]["config"]
    assert config["model_name"] == "gemini-embedding-2"
    assert config["dimension"] == 768
    assert config["task"] == "retrieval"
    assert config["api_key_env_var"] == "MY_GEMINI_KEY"
    assert "model" not in config and "dimensions" not in config
    stored = b"".join(p.read_bytes() for p in (tmp_path / "db").rglob("*") if p.is_file())
    assert SECRET.encode() not in stored


def test_model_and_dimensions_are_aliases(emulator: Emulator) -> None:
    chroma_style = GeminiEmbeddingFunction(
        model_name="gemini-embedding-001", dimension=256, base_url=emulator.base_url
    )
    alias_style = GeminiEmbeddingFunction(
        model="gemini-embedding-001", dimensions=256, base_url=emulator.base_url
    )
    positional = GeminiEmbeddingFunction("gemini-embedding-001", 256, base_url=emulator.base_url)
    assert chroma_style.get_config() == alias_style.get_config() == positional.get_config()
    assert chroma_style.get_config()["dimension"] == 256
    with pytest.raises(ConfigError, match="dimension=256 and its alias dimensions=768 disagree"):
        GeminiEmbeddingFunction(dimension=256, dimensions=768, base_url=emulator.base_url)
    with pytest.raises(ConfigError, match="model_name='gemini-embedding-2' and its alias model"):
        GeminiEmbeddingFunction(
            model_name="gemini-embedding-2",
            model="gemini-embedding-001",
            base_url=emulator.base_url,
        )
    with pytest.raises(ConfigError, match="task_type='SUMMARY' is not one of RETRIEVAL_DOCUMENT"):
        GeminiEmbeddingFunction(task_type="SUMMARY", base_url=emulator.base_url)
    sym = GeminiEmbeddingFunction(task_type="CLUSTERING", base_url=emulator.base_url)
    assert sym.get_config()["task"] == "clustering"
    sym(["cats"])
    assert emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"] == [
        {"text": "task: clustering | query: cats"}
    ]


def test_default_key_variable_is_chromas(monkeypatch: pytest.MonkeyPatch) -> None:
    """GEMINI_API_KEY, as Chroma's Google functions default to; GOOGLE_API_KEY when it is set
    (as Chroma's GoogleGenerativeAiEmbeddingFunction, the SDK and the rest of gemb2 do)."""
    no_key_env(monkeypatch)
    with pytest.raises(ConfigError, match="environment variable GEMINI_API_KEY is not set"):
        GeminiEmbeddingFunction()
    loopback = GeminiEmbeddingFunction(base_url="http://127.0.0.1:9")  # needs no key
    assert loopback.get_config()["api_key_env_var"] == "GEMINI_API_KEY"

    monkeypatch.setenv("GEMINI_API_KEY", "gemini-value")
    ef = GeminiEmbeddingFunction()
    assert ef.api_key_env_var == ef.get_config()["api_key_env_var"] == "GEMINI_API_KEY"
    assert ef.embedder.settings.resolve_api_key() == ("gemini-value", "GEMINI_API_KEY")

    monkeypatch.setenv("GOOGLE_API_KEY", "google-value")
    ef = GeminiEmbeddingFunction()
    assert ef.get_config()["api_key_env_var"] == "GOOGLE_API_KEY"
    assert ef.embedder.settings.resolve_api_key() == ("google-value", "GOOGLE_API_KEY")
    assert "google-value" not in json.dumps(ef.get_config()) + repr(ef)

    with pytest.raises(ConfigError, match="MY_UNSET_VAR is not set"):
        GeminiEmbeddingFunction(api_key_env_var="MY_UNSET_VAR")
    with pytest.raises(ConfigError, match="api_key is empty"):
        GeminiEmbeddingFunction(api_key="")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"model_name": "gemini-embedding-001", "dimension": 768, "task": "clustering"},
        {"api_key_env_var": "MY_GEMINI_KEY", "task_type": "QUESTION_ANSWERING"},
        {"vertexai": True, "project": "proj", "location": "us-central1", "dimension": 1536},
        {"base_url": "http://127.0.0.1:9", "api_key": SECRET, "api_key_env_var": "MY_GEMINI_KEY"},
    ],
)
def test_get_config_and_build_from_config_agree(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-value")
    monkeypatch.setenv("MY_GEMINI_KEY", "named-value")
    ef = GeminiEmbeddingFunction(**kwargs)
    config = ef.get_config()
    assert SECRET not in json.dumps(config)
    rebuilt = GeminiEmbeddingFunction.build_from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is GeminiEmbeddingFunction
    # a key given with a named variable: the rebuilt function reads the variable, so says so
    assert rebuilt.get_config() == {**config, "explicit_api_key": False}
    assert config["explicit_api_key"] == ("api_key" in kwargs)
    ef.validate_config_update(config, rebuilt.get_config())  # same space: allowed
    other = {**config, "dimension": 128 if config["dimension"] != 128 else 256}
    with pytest.raises(ModelMismatchError, match="dimension="):
        ef.validate_config_update(config, other)


class _PreviousGemb2Config(EmbeddingFunction[Documents]):
    """Persists the config the way gemb2 did before it took Chroma's names (not registered:
    reopening must rebuild the real function from it)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config

    def __call__(self, input: Documents) -> Embeddings:
        raise AssertionError("vectors are given to add")

    @staticmethod
    def name() -> str:
        return NAME

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> _PreviousGemb2Config:
        return _PreviousGemb2Config(config)

    def is_legacy(self) -> bool:
        return False


def test_configs_persisted_with_model_and_dimensions_still_load(
    emulator: Emulator, tmp_path: Path
) -> None:
    old_config = {
        "model": "gemini-embedding-2",
        "dimensions": 128,
        "task": "retrieval",
        "api_key_env_var": None,
        "vertexai": False,
        "project": None,
        "location": None,
        "base_url": emulator.base_url,
    }
    vectors = GeminiEmbeddingFunction(dimension=128, base_url=emulator.base_url)(DOCS)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    old = client.create_collection("old", embedding_function=_PreviousGemb2Config(old_config))
    old.add(ids=IDS, embeddings=[np.asarray(v) for v in vectors], documents=DOCS)
    assert old.configuration_json["embedding_function"]["config"]["dimensions"] == 128
    emulator.reset_stats()

    out = child(
        """
        import json, sys, chromadb, gemb2.stores.chroma
        c = chromadb.PersistentClient(path=sys.argv[1]).get_collection("old")
        ids = c.query(query_texts=["where honey comes from"], n_results=1)["ids"][0]
        ef = c.configuration["embedding_function"]
        print(json.dumps([type(ef).__name__, ef.model_name, ef.dimension, ids]))
        """,
        str(tmp_path / "db"),
    )
    assert out == ["GeminiEmbeddingFunction", "gemini-embedding-2", 128, ["bees"]]
    assert emulator.stats.dimensions == {128: 1}  # the old config's dimension was used

    # both spellings compare: same space passes, another dimension is refused
    new = GeminiEmbeddingFunction(dimension=128, base_url=emulator.base_url)
    new.validate_config_update(old_config, new.get_config())
    with pytest.raises(ModelMismatchError, match="dimension=128 but .* dimension=768"):
        new.validate_config_update(
            old_config, {"model_name": "gemini-embedding-2", "dimension": 768}
        )
    with pytest.raises(ModelMismatchError, match="'old' was embedded with dimension=128"):
        open_collection(
            client, "old", GeminiEmbeddingFunction(dimension=768, base_url=emulator.base_url)
        )


# -- item 13: reopened in a new process ---------------------------------------------------------

REOPEN = """
import json, sys, chromadb
{imports}
c = chromadb.PersistentClient(path=sys.argv[1]).get_collection("media")
try:
    print(json.dumps({{"ids": c.query(query_texts=["honeybees"], n_results=1)["ids"]}}))
except Exception as exc:
    print(json.dumps({{"error": type(exc).__name__, "message": str(exc)}}))
"""


def _chroma_section() -> str:
    text = CHROMA_PAGE.read_text()
    start = text.index("## Reopening a collection in a new process")
    return text[start : text.index("\n## ", start + 1)]


def test_reopening_without_the_import_fails_as_the_docs_say(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Chroma's message names only the function; the docs' Chroma page quotes it with the fix, and the
    fix (one import) works."""
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = open_collection(client, "media", GeminiEmbeddingFunction(base_url=emulator.base_url))
    col.add(ids=IDS, documents=DOCS)
    db = str(tmp_path / "db")

    failed = child(REOPEN.format(imports=""), db)
    assert failed["error"] == "ValueError"
    quoted = f"Embedding function {NAME} not found"
    assert quoted in failed["message"]
    section = _chroma_section()
    assert quoted in section  # searching the docs for the error finds it...
    fix = re.search(r"import gemb2\.stores\.chroma", section)
    assert fix and fix.start() - section.index(quoted) < 600  # ...next to the fix
    assert child(REOPEN.format(imports="import gemb2.stores.chroma"), db) == {"ids": [["bees"]]}


def test_a_collection_made_with_an_explicit_key_never_uses_the_environments(
    emulator: Emulator, tmp_path: Path
) -> None:
    db = str(tmp_path / "db")
    client = chromadb.PersistentClient(path=db)
    # (the alias dimensions=: this test runs the same against gemb2 before Chroma's names)
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=256, api_key=SECRET)
    assert ef.embedder.settings.resolve_api_key()[0] == SECRET  # this process uses it
    col = open_collection(client, "media", ef)
    col.add(ids=IDS, documents=DOCS)
    emulator.reset_stats()

    # reopened with other keys in the environment: refused before any call, saying what to do
    env = {"GOOGLE_API_KEY": ENV_KEY, "GEMINI_API_KEY": ENV_KEY}
    refused = child(REOPEN.format(imports="import gemb2.stores.chroma"), db, env=env)
    assert "ids" not in refused, "the reopened collection embedded with the environment's key"
    assert refused["error"] == "ConfigError"
    assert "created with GeminiEmbeddingFunction(api_key=...)" in refused["message"]
    assert "embedding_function=GeminiEmbeddingFunction(api_key=" in refused["message"]
    assert "api_key_env_var=" in refused["message"]
    assert ENV_KEY not in refused["message"]
    assert emulator.stats.requests == 0
    # what made it refuse: a flag, and no key, in the persisted config
    config = col.configuration_json["embedding_function"]["config"]
    assert config["explicit_api_key"] is True
    assert config["api_key_env_var"] is None
    stored = b"".join(p.read_bytes() for p in Path(db).rglob("*") if p.is_file())
    assert SECRET.encode() not in stored

    # passing the key again, as the message says, works
    again = child(
        f"""
        import json, os, sys, chromadb
        from gemb2.stores.chroma import GeminiEmbeddingFunction
        ef = GeminiEmbeddingFunction(
            api_key=os.environ["THE_KEY"], base_url="{emulator.base_url}", dimensions=256)
        c = chromadb.PersistentClient(path=sys.argv[1]).get_collection(
            "media", embedding_function=ef)
        ids = c.query(query_texts=["honeybees"], n_results=1)["ids"]
        print(json.dumps({{"ids": ids, "key_is_given": ef.embedder.settings.resolve_api_key()[0]
                          == os.environ["THE_KEY"]}}))
        """,
        db,
        env={**env, "THE_KEY": SECRET},
    )
    assert again == {"ids": [["bees"]], "key_is_given": True}
    assert emulator.stats.requests == 1


def test_an_explicit_key_with_a_named_variable_reopens_from_that_variable(
    emulator: Emulator, tmp_path: Path
) -> None:
    db = str(tmp_path / "db")
    ef = GeminiEmbeddingFunction(
        base_url=emulator.base_url, api_key=SECRET, api_key_env_var="MY_GEMINI_KEY"
    )
    col = open_collection(chromadb.PersistentClient(path=db), "media", ef)
    col.add(ids=IDS, documents=DOCS)
    assert col.configuration_json["embedding_function"]["config"]["api_key_env_var"] == (
        "MY_GEMINI_KEY"
    )
    out = child(
        """
        import json, sys, chromadb, gemb2.stores.chroma
        c = chromadb.PersistentClient(path=sys.argv[1]).get_collection("media")
        ids = c.query(query_texts=["honeybees"], n_results=1)["ids"]
        key, var = c.configuration["embedding_function"].embedder.settings.resolve_api_key()
        print(json.dumps({"ids": ids, "var": var, "from_var": key == "named-var-value"}))
        """,
        db,
        env={"MY_GEMINI_KEY": "named-var-value", "GOOGLE_API_KEY": ENV_KEY},
    )
    assert out == {"ids": [["bees"]], "var": "MY_GEMINI_KEY", "from_var": True}
