"""Secrets: an API key set in the environment or passed explicitly never shows in a repr, a
DEBUG log line, an exception message or traceback, Haystack ``to_dict``/``Pipeline.dumps``,
LlamaIndex ``to_dict``/``to_json``, LangChain ``dumps``, a Chroma persisted configuration or
files on disk, or the CLI's output. Every form is collected and grepped for the key."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import pytest
from rel_helpers import DIMS, make_corpus, persistent

from gemb2 import APIError, Embedder, EmbedSettings, RetryExhaustedError
from gemb2.testing.emulator import Emulator

SECRET = "AIzaSyRELIABILITY-do-not-leak-7f3a9c0d"
FRAGMENT = "RELIABILITY-do-not-leak"  # a key cut short must not show either


class Forms:
    """Everything a key could leak into, gathered as text."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, label: str, value: Any) -> None:
        self.texts[label] = value if isinstance(value, str) else repr(value)

    def error(self, label: str, fn: Callable[[], Any]) -> BaseException:
        """Run ``fn``, which must fail; keep its message, repr and full chained traceback."""
        try:
            fn()
        except Exception as exc:
            self.add(f"{label}: str", str(exc))
            self.add(f"{label}: repr", repr(exc))
            self.add(f"{label}: traceback", "".join(traceback.format_exception(exc)))
            for attr in ("details", "message", "source", "reason"):
                if getattr(exc, attr, None) is not None:
                    self.add(f"{label}: {attr}", getattr(exc, attr))
            return exc
        raise AssertionError(f"{label}: expected a failure")

    def files(self, label: str, root: Path) -> None:
        """Every file under ``root``, as bytes decoded leniently (sqlite, HNSW, logs)."""
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.add(f"{label}: {path.relative_to(root)}", path.read_bytes().decode("latin-1"))

    def assert_clean(self, expected_at_least: int) -> None:
        assert len(self.texts) >= expected_at_least, sorted(self.texts)
        leaks = [k for k, v in self.texts.items() if SECRET in v or FRAGMENT in v]
        assert not leaks, f"the key leaked into: {leaks}"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG (gemb2, google_genai, httpx, httpcore, chromadb, ...)."""
    caplog.set_level(logging.DEBUG)
    for name in ("google_genai", "httpx", "httpcore", "gemb2", "chromadb", "haystack"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog


@pytest.mark.parametrize("how", ["explicit", "environment"])
def test_the_key_appears_in_no_repr_log_error_serialised_form_or_store(
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    emulator: Emulator,
    tmp_path: Path,
    chroma_server: str,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    forms = Forms()
    if how == "environment":
        monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
        key: dict[str, Any] = {}
    else:
        key = {"api_key": SECRET}
    url = emulator.base_url
    png = next(p for p in make_corpus(tmp_path / "media", 0) if p.suffix == ".png")

    # -- core ----------------------------------------------------------------------------
    embedder = Embedder(base_url=url, dimensions=DIMS, max_retries=1, backoff_initial=0, **key)
    assert embedder.settings.resolve_api_key()[0] == SECRET  # the key is really in use
    embedder.embed(["a text", png])
    for label, value in {
        "Embedder repr": embedder,
        "settings repr": embedder.settings,
        "settings str": str(embedder.settings),
        "settings json": embedder.settings.model_dump_json(),
        "settings dump": embedder.settings.model_dump(),
        "transport repr": embedder.transport,
        "usage": embedder.usage.summary(),
    }.items():
        forms.add(label, value)
    emulator.configure(fault_rate=1.0, faults=("500", "drop"))  # retried, then given up
    forms.error("retries exhausted", lambda: embedder.embed(["a text"]))
    emulator.configure(fault_rate=0.0, max_batch=1)  # 400 INVALID_ARGUMENT, not retried
    forms.error("400 from the service", lambda: embedder.embed(["one", "two"]))
    emulator.configure(max_batch=100)
    forms.error("bad setting", lambda: EmbedSettings(dimensions=5, **key))
    forms.error("unknown setting", lambda: Embedder(base_url=url, colour="red", **key))
    forms.error("bad override", lambda: embedder.settings.with_(timeout=-1))
    embedder.close()

    # -- LangChain -----------------------------------------------------------------------
    from langchain_chroma import Chroma
    from langchain_core.load import dumpd, dumps

    from langchain_gemb2 import GeminiEmbeddings

    lc = GeminiEmbeddings(base_url=url, dimensions=DIMS, **key)
    assert lc.google_api_key is not None and lc.google_api_key.get_secret_value() == SECRET
    store = Chroma(
        collection_name="lc-secrets", embedding_function=lc, client=persistent(tmp_path / "lc")
    )
    store.add_texts(["a text about keys"])
    store.add_images([str(png)])
    forms.add("LangChain repr", lc)
    forms.add("LangChain dumps", dumps(lc))
    forms.add("LangChain dumpd", json.dumps(dumpd(lc), default=str))
    forms.add("LangChain model_dump_json", lc.model_dump_json())
    forms.add("LangChain vector store repr", store)
    forms.error("LangChain bad setting", lambda: GeminiEmbeddings(dimensions=5, **key))
    forms.files("LangChain Chroma dir", tmp_path / "lc")

    # -- LlamaIndex ----------------------------------------------------------------------
    from llama_index.core.ingestion import IngestionPipeline

    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    li = GeminiMultiModalEmbedding(base_url=url, dimensions=DIMS, **key)
    assert li.embedder.settings.resolve_api_key()[0] == SECRET
    li.get_text_embedding("a text")
    li.get_image_embedding(str(png))
    forms.add("LlamaIndex repr", li)
    forms.add("LlamaIndex to_dict", json.dumps(li.to_dict(), default=str))
    forms.add("LlamaIndex to_json", li.to_json())
    forms.add("LlamaIndex model_dump_json", li.model_dump_json())
    pipeline = IngestionPipeline(transformations=[li])
    pipeline.persist(str(tmp_path / "li"))
    forms.files("LlamaIndex persisted pipeline", tmp_path / "li")
    forms.error(
        "LlamaIndex bad setting",
        lambda: GeminiMultiModalEmbedding(base_url=url, dimensions=5, **key),
    )

    # -- Haystack ------------------------------------------------------------------------
    from haystack import Document, Pipeline
    from haystack.utils import Secret
    from haystack_integrations.components.embedders.gemb2 import (
        GeminiDocumentEmbedder,
        GeminiTextEmbedder,
    )

    secret = Secret.from_token(SECRET) if key else Secret.from_env_var("GOOGLE_API_KEY")
    text_embedder = GeminiTextEmbedder(api_key=secret, api_base_url=url, dimensions=DIMS)
    doc_embedder = GeminiDocumentEmbedder(
        api_key=secret, api_base_url=url, dimensions=DIMS, progress_bar=False
    )
    out = text_embedder.run("a query")
    docs = doc_embedder.run([Document(content="a document")])
    forms.add("Haystack run meta", json.dumps(out["meta"], default=str))
    forms.add("Haystack documents", docs)
    forms.add("Haystack repr", text_embedder)
    pipe = Pipeline()
    pipe.add_component("embedder", text_embedder)
    if key:  # Haystack refuses to serialise a token secret, and says so without the token
        forms.error("Haystack to_dict of a token", text_embedder.to_dict)
        forms.error("Haystack Pipeline.dumps of a token", pipe.dumps)
    else:
        forms.add("Haystack to_dict", json.dumps(text_embedder.to_dict()))
        forms.add("Haystack document embedder to_dict", json.dumps(doc_embedder.to_dict()))
        forms.add("Haystack Pipeline.dumps", pipe.dumps())
        assert "GOOGLE_API_KEY" in forms.texts["Haystack to_dict"]  # the name, not the value

    # -- Chroma: embedded and server ---------------------------------------------------------
    from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

    env_name = {} if key else {"api_key_env_var": "GOOGLE_API_KEY"}
    ef = GeminiEmbeddingFunction(base_url=url, dimensions=DIMS, **env_name, **key)
    collection = open_collection(persistent(tmp_path / "chroma"), "secrets", ef)
    collection.add(ids=["a"], documents=["a text"])
    collection.add(ids=["b"], uris=[str(png)])
    forms.add("Chroma EF repr", ef)
    forms.add("Chroma EF config", json.dumps(ef.get_config()))
    forms.add("Chroma configuration_json", json.dumps(collection.configuration_json))
    forms.files("Chroma persistent dir", tmp_path / "chroma")
    server = urlparse(chroma_server)
    client = chromadb.HttpClient(host=server.hostname or "127.0.0.1", port=server.port or 8000)
    remote = open_collection(client, f"secrets-{how}", ef)
    remote.add(ids=["a"], documents=["a text"])
    fetched = client.get_collection(f"secrets-{how}")
    forms.add("Chroma server configuration", json.dumps(fetched.configuration_json))
    forms.add("Chroma server metadata", json.dumps(fetched.metadata))
    client.delete_collection(f"secrets-{how}")

    # -- every log record, at DEBUG, of every logger ------------------------------------------
    assert any(r.levelno == logging.DEBUG for r in debug_logs.records)
    forms.add("DEBUG logs", debug_logs.text)
    forms.add("DEBUG log args", repr([(r.msg, r.args) for r in debug_logs.records]))
    forms.assert_clean(expected_at_least=40)


def test_the_cli_never_prints_or_stores_the_key(emulator: Emulator, tmp_path: Path) -> None:
    """``gemb2 -v`` (INFO logs) index, search, embed and failing runs with the key in the
    environment: stdout, stderr and the database folder hold no trace of it."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus, 5)
    db = tmp_path / "db"
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    env.update(GOOGLE_API_KEY=SECRET, ANONYMIZED_TELEMETRY="False")
    base = ["--base-url", emulator.base_url, "--dimensions", str(DIMS)]
    forms = Forms()

    def cli(label: str, *argv: str, ok: bool = True) -> None:
        run = subprocess.run(
            [sys.executable, "-m", "gemb2.cli.main", "-v", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert (run.returncode == 0) == ok, (label, run.stdout, run.stderr)
        forms.add(f"{label}: stdout", run.stdout)
        forms.add(f"{label}: stderr", run.stderr)

    cli("index", "index", str(corpus), "--db", str(db), "-q", *base)
    cli("search", "search", "a red circle", "--db", str(db), "--json", *base)
    cli("embed", "embed", "a text", str(corpus / "red_circle.png"), *base)
    cli(
        "bad dimension",
        "embed",
        "a text",
        "--base-url",
        emulator.base_url,
        "--dimensions",
        "5",
        ok=False,
    )
    emulator.configure(fault_rate=1.0, faults=("503",))
    try:
        cli("retries exhausted", "embed", "x", "--max-retries", "1", *base, ok=False)
    finally:
        emulator.configure(fault_rate=0.0)
    assert "503" in forms.texts["retries exhausted: stderr"]
    assert "retrying" in forms.texts["retries exhausted: stderr"]  # -v logged the retry
    forms.files("CLI database folder", db)
    forms.assert_clean(expected_at_least=12)


# -- a key the service echoes back -----------------------------------------------------------

ECHOED = "AIzaSyECHOED-key_0123456789abcdefghijkl"  # the shape of a Google API key
PROXY_KEY = "proxy-token-5e1f0c7a9b"  # a configured key of another shape


def test_the_keys_in_these_tests_are_what_they_claim() -> None:
    import re

    assert re.fullmatch(r"AIza[0-9A-Za-z_-]{35}", ECHOED)
    assert not PROXY_KEY.startswith("AIza")


def _raw_403(emulator: Emulator, key: str) -> str:
    """What the emulator sends back for a refused key: it really echoes it."""
    import httpx

    answer = httpx.post(
        f"{emulator.base_url}/v1beta/models/gemini-embedding-2:batchEmbedContents",
        json={"requests": [{"content": {"parts": [{"text": "x"}]}}]},
        headers={"x-goog-api-key": key},
        timeout=30,
    )
    assert answer.status_code == 403
    return answer.text


def _error_forms(exc: BaseException) -> dict[str, str]:
    """An error as a user meets it: text, repr, args, attributes, the printed chain."""
    forms = {
        "str": str(exc),
        "repr": repr(exc),
        "args": repr(exc.args),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    for attr in ("message", "details", "last"):
        if getattr(exc, attr, None) is not None:
            forms[attr] = repr(getattr(exc, attr))
    if exc.__cause__ is not None:
        forms["cause"] = repr(exc.__cause__)
        forms["cause details"] = repr(getattr(exc.__cause__, "details", None))
    return forms


def _assert_redacted(forms: dict[str, str], key: str) -> None:
    leaks = [label for label, text in forms.items() if key in text]
    assert not leaks, f"the key leaked into: {leaks}"


@pytest.mark.parametrize(
    ("how", "key"),
    [("explicit", ECHOED), ("environment", ECHOED), ("explicit", PROXY_KEY)],
)
async def test_a_key_echoed_by_the_service_is_redacted_from_errors_and_logs(
    how: str,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    emulator: Emulator,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    if how == "environment":
        monkeypatch.setenv("GOOGLE_API_KEY", key)
        settings: dict[str, Any] = {}
    else:
        settings = {"api_key": key}
    emulator.configure(reject_api_key=True)
    assert key in _raw_403(emulator, key)
    emb = Embedder(
        base_url=emulator.base_url,
        dimensions=DIMS,
        max_retries=1,
        backoff_initial=0,
        backoff_max=0,
        **settings,
    )
    assert emb.settings.resolve_api_key()[0] == key

    # Google's 403 "API key not valid", echoing the key: not retried
    with pytest.raises(APIError) as refused:
        emb.embed(["a text"])
    assert refused.value.code == 403 and refused.value.status == "PERMISSION_DENIED"
    assert "API key not valid" in str(refused.value) and "<redacted>" in str(refused.value)
    metadata = refused.value.details["error"]["details"][0]["metadata"]
    assert metadata["key"] == "<redacted>"
    forms = {f"403 {k}": v for k, v in _error_forms(refused.value).items()}
    with pytest.raises(APIError) as refused_async:
        await emb.aembed(["a text"])
    forms.update({f"async 403 {k}": v for k, v in _error_forms(refused_async.value).items()})

    # a proxy echoing the key in its 503s: retried, logged, then given up
    emulator.configure(reject_api_key=False, echo_api_key=True, fault_rate=1.0, faults=("503",))
    with pytest.raises(RetryExhaustedError) as exhausted:
        emb.embed(["a text"])
    assert "(request sent with key <redacted>)" in str(exhausted.value)
    assert "<redacted>" in str(exhausted.value.last)
    forms.update({f"exhausted {k}": v for k, v in _error_forms(exhausted.value).items()})
    await emb.aclose()

    ours = [r for r in debug_logs.records if r.name.split(".")[0] in ("gemb2", "haystack_gemb2")]
    assert any("retrying" in r.getMessage() and "<redacted>" in r.getMessage() for r in ours)
    forms["gemb2 log records"] = "\n".join(r.getMessage() for r in ours)
    forms["every log line"] = debug_logs.text
    _assert_redacted(forms, key)


def test_any_google_shaped_key_is_redacted_from_the_packages_errors() -> None:
    """A key the process never configured (another project's, pasted into a message)."""
    err = APIError(f"bad key {ECHOED}!", code=400, details={"error": {"key": ECHOED}})
    exhausted = RetryExhaustedError(err, 2)
    for text in (str(err), repr(err), repr(err.details), str(exhausted), repr(exhausted.details)):
        assert ECHOED not in text and "<redacted>" in text


def test_the_cli_prints_no_echoed_key(emulator: Emulator) -> None:
    """``gemb2 embed --base-url`` with the key in the environment: the service's 403 and a
    proxy's 503s (logged at -v as they are retried) reach stderr without the key."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    env.update(GOOGLE_API_KEY=ECHOED, ANONYMIZED_TELEMETRY="False")
    base = ["--base-url", emulator.base_url, "--dimensions", str(DIMS)]

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gemb2.cli.main", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )

    emulator.configure(reject_api_key=True)
    refused = cli("embed", "a text", *base)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == (
        "gemb2 embed: error: 403 PERMISSION_DENIED: API key not valid. Please pass a valid "
        "API key. (key: <redacted>)\n"
    )

    emulator.configure(reject_api_key=False, echo_api_key=True, fault_rate=1.0, faults=("503",))
    exhausted = cli("-v", "embed", "a text", "--max-retries", "1", *base)
    assert exhausted.returncode == 2
    lines = exhausted.stderr.splitlines()
    assert any("retrying" in line and "<redacted>" in line for line in lines), lines
    assert lines[-1].startswith("gemb2 embed: error: ")
    assert "gave up after 2 attempts: 503 UNAVAILABLE: The model is overloaded" in lines[-1]
    assert lines[-1].endswith("(request sent with key <redacted>)")
    for run in (refused, exhausted):
        assert ECHOED not in run.stdout + run.stderr
