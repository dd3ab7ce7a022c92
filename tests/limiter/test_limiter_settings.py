"""The ``limiter`` setting from every side: its forms and errors, the environment
variable, the password a Redis URL may hold (never in a repr, message or serialised
form), each wrapper carrying it, and the ``gemb2`` command's quota flags."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gemb2 import ConfigError, Embedder, EmbedSettings
from gemb2.cli.main import main
from gemb2.engine.limiter_backends import ENV_VAR, limiter_for
from gemb2.engine.ratelimit import RateLimiter
from gemb2.engine.shared_limiter import SharedLimiter
from gemb2.testing.emulator import Emulator

PASSWORD = "s3cret-limiter-password"


def quota_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT key, state FROM gcra ORDER BY key").fetchall()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/quota", "expected 'local', 'auto', sqlite:///PATH or redis://"),
        ("sqlite://", "no file named; expected sqlite:///PATH"),
        ("redis:///0", "no host; expected redis://HOST:PORT/DB"),
        ("redis://127.0.0.1:6379/zero", "the database must be a number, got 'zero'"),
        ("sqlite:///q.sqlite?quotas=x", "unknown option 'quotas' (only ?quota=NAME)"),
        (f"ftp://:{PASSWORD}@127.0.0.1/", "expected 'local'"),
    ],
)
def test_a_bad_limiter_is_refused_before_any_call(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        Embedder(limiter=url, base_url="http://127.0.0.1:9")
    assert "limiter" in str(info.value) and reason in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_redis_password_never_shows() -> None:
    """repr, model_dump, JSON and a message that happens to hold it all show
    ``<redacted>``; the value itself keeps the password, so it connects; ``with_`` keeps it."""
    url = f"redis://:{PASSWORD}@127.0.0.1:6390/2?quota=team"
    s = EmbedSettings(limiter=url)
    assert str(s.limiter) == url
    shown = "redis://:<redacted>@127.0.0.1:6390/2?quota=team"
    assert repr(s.limiter) == repr(shown)
    assert PASSWORD not in repr(s) and shown in repr(s)
    assert s.model_dump()["limiter"] == shown
    assert PASSWORD not in s.model_dump_json()
    assert str(s.with_(dimensions=768).limiter) == url
    assert PASSWORD not in str(ConfigError(f"could not use {url}"))


@pytest.fixture
def guarded_port(own_redis: object) -> int:
    """The port of a Redis server of the test's own that wants ``PASSWORD``."""
    own_redis.client.config_set("requirepass", PASSWORD)  # type: ignore[attr-defined]
    return int(own_redis.port)  # type: ignore[attr-defined]


def test_a_redis_password_on_a_server(guarded_port: int, emulator: Emulator) -> None:
    """A server that wants a password: the URL holding it paces; a wrong one is refused
    at construction, with the password hidden."""
    port = guarded_port
    emb = Embedder(
        base_url=emulator.base_url,
        dimensions=128,
        requests_per_minute=600,
        limiter=f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
    )
    assert len(emb.embed(["paced through a guarded server"])) == 1
    with pytest.raises(ConfigError, match="cannot reach Redis") as info:
        Embedder(
            base_url=emulator.base_url, limiter=f"redis://:wrong-{PASSWORD}@127.0.0.1:{port}/0"
        )
    assert PASSWORD not in str(info.value)


def test_the_environment_names_the_limiter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: Emulator
) -> None:
    """GEMB2_LIMITER is read when the setting is unset; ``local`` (or nothing) is this
    Embedder alone; ``auto`` is the per-user file."""
    assert type(limiter_for(EmbedSettings())) is RateLimiter
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{tmp_path / 'env.sqlite'}")
    emb = Embedder(base_url=emulator.base_url, dimensions=128, requests_per_minute=600)
    emb.embed(["paced through the environment's file"])
    assert [k for k, _ in quota_rows(tmp_path / "env.sqlite")] == [f"{emb._limiter.name}:requests"]  # type: ignore[attr-defined]
    assert type(limiter_for(EmbedSettings(limiter="local"))) is RateLimiter
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    auto = limiter_for(EmbedSettings(limiter="auto", requests_per_minute=60))
    assert isinstance(auto, SharedLimiter)
    assert (tmp_path / "cache" / "gemb2" / "limiter.sqlite").is_file()


def test_redis_out_of_reach_is_one_clear_error(own_redis: object, emulator: Emulator) -> None:
    """Refused at construction when the server is not there; mid-run, the package's
    ConfigError naming the limiter, not the client library's traceback."""
    with pytest.raises(ConfigError, match=r"limiter 'redis://127.0.0.1:9/0': cannot reach Redis"):
        Embedder(limiter="redis://127.0.0.1:9/0")
    url = own_redis.url  # type: ignore[attr-defined]
    emb = Embedder(base_url=emulator.base_url, dimensions=128, requests_per_minute=600, limiter=url)
    emb.embed(["before the server went away"])
    own_redis.stop()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=f"the shared rate limiter at {url} failed"):
        emb.embed(["after"])


def test_chroma_does_not_persist_the_limiter(
    tmp_path: Path, emulator: Emulator, guarded_port: int
) -> None:
    """Where a process shares its pacing is not a fact of the collection: a machine that
    reopens it may have no such file or server, so Chroma's config leaves it out (the
    reopened function reads GEMB2_LIMITER)."""
    import chromadb

    from gemb2.stores.chroma import GeminiEmbeddingFunction

    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimension=128, limiter=url)
    assert ef.embedder.settings.limiter == url
    assert "limiter" not in ef.get_config()
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = client.create_collection("quota-test", embedding_function=ef)  # type: ignore[arg-type]
    col.add(ids=["1"], documents=["a shared quota"])
    assert "sqlite" not in json.dumps(col.configuration_json)
    guarded = GeminiEmbeddingFunction(
        base_url=emulator.base_url, limiter=f"redis://:{PASSWORD}@127.0.0.1:{guarded_port}/0"
    )
    assert PASSWORD not in json.dumps(guarded.get_config()) + repr(guarded)


def test_haystack_serialises_the_limiter_without_its_password(
    monkeypatch: pytest.MonkeyPatch, guarded_port: int, emulator: Emulator
) -> None:
    """``settings={"limiter": ...}`` reaches the engine; ``to_dict`` keeps the URL with its
    password redacted, and the component rebuilt from it takes the full URL from
    GEMB2_LIMITER (or says to set it)."""
    from haystack_gemb2 import GeminiTextEmbedder

    port = guarded_port
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    comp = GeminiTextEmbedder(api_base_url=emulator.base_url, settings={"limiter": url})
    data = comp.to_dict()
    assert PASSWORD not in json.dumps(data)
    assert data["init_parameters"]["settings"]["limiter"] == (
        f"redis://:<redacted>@127.0.0.1:{port}/0"
    )
    rebuilt = GeminiTextEmbedder.from_dict(data)
    with pytest.raises(ConfigError, match=f"password is not stored.*set {ENV_VAR}"):
        rebuilt.warm_up()
    monkeypatch.setenv(ENV_VAR, url)
    rebuilt.warm_up()
    assert rebuilt.run(text="a shared quota")["embedding"]


def test_langchain_and_llamaindex_carry_the_limiter(tmp_path: Path, emulator: Emulator) -> None:
    """Each wrapper's field is the core's: the value reaches the engine, the repr and
    LlamaIndex's ``to_json`` hide a password."""
    from langchain_gemb2 import GeminiEmbeddings
    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    lc = GeminiEmbeddings(base_url=emulator.base_url, dimensions=128, limiter=url)
    assert lc.embedder.settings.limiter == url
    li = GeminiMultiModalEmbedding(base_url=emulator.base_url, dimensions=128, limiter=url)
    assert li.embedder.settings.limiter == url
    guarded = f"redis://:{PASSWORD}@127.0.0.1:9/0"
    lc_guarded = GeminiEmbeddings.model_construct(limiter=EmbedSettings(limiter=guarded).limiter)
    assert PASSWORD not in repr(lc_guarded)
    li_guarded = GeminiMultiModalEmbedding.model_construct(
        limiter=EmbedSettings(limiter=guarded).limiter
    )
    assert PASSWORD not in li_guarded.to_json()


# -- the command ------------------------------------------------------------------------


def test_index_flags_pace_through_the_named_file(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(3):
        (notes / f"n{i}.txt").write_text(f"note number {i} about a shared quota")
    quota = tmp_path / "quota.sqlite"
    code = main(
        [
            "index",
            str(notes),
            "--db",
            str(tmp_path / "db"),
            "--base-url",
            emulator.base_url,
            "-q",
            "--limiter",
            f"sqlite:///{quota}",
            "--requests-per-minute",
            "600",
            "--tokens-per-minute",
            "100000",
            "--max-concurrency",
            "2",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "indexed 3 files" in out
    keys = [k.rsplit(":", 1)[1] for k, _ in quota_rows(quota)]
    assert keys == ["requests", "tokens"]


def test_the_command_shares_a_per_user_file_by_default(
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    code = main(
        [
            "embed",
            "a",
            "b",
            "--base-url",
            emulator.base_url,
            "--dimensions",
            "128",
            "--requests-per-minute",
            "600",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(out.splitlines()) == 2
    rows = quota_rows(tmp_path / "cache" / "gemb2" / "limiter.sqlite")
    assert [k.rsplit(":", 1)[1] for k, _ in rows] == ["requests"]
    # --limiter local: this process alone, nothing written
    code = main(
        [
            "embed",
            "c",
            "--base-url",
            emulator.base_url,
            "--dimensions",
            "128",
            "--requests-per-minute",
            "600",
            "--limiter",
            "local",
            "--model",
            "gemini-embedding-001",
        ]
    )
    capsys.readouterr()
    assert code == 0
    assert len(quota_rows(tmp_path / "cache" / "gemb2" / "limiter.sqlite")) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--limiter", "ftp://x/y"], "gemb2 embed: error: limiter 'ftp://x/y': expected"),
        (["--requests-per-minute", "0"], "--requests-per-minute: must be above 0, got 0"),
        (["--max-concurrency", "many"], "--max-concurrency: not a number: 'many'"),
    ],
)
def test_bad_quota_flags_are_one_line(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, flags: list[str], message: str
) -> None:
    try:
        code = main(["embed", "a", "--base-url", emulator.base_url, *flags])
    except SystemExit as exc:  # argparse's own refusal
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_auto_without_a_writable_cache_paces_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The per-user default is a convenience: a cache directory that cannot be written
    leaves the process pacing alone, with a warning; a file named outright is an error."""
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    with caplog.at_level("WARNING", logger="gemb2"):
        limiter = limiter_for(EmbedSettings(limiter="auto", requests_per_minute=60))
    assert type(limiter) is RateLimiter
    assert "pacing this process alone" in caplog.text and "cannot use" in caplog.text
    with pytest.raises(ConfigError, match="cannot use"):
        limiter_for(EmbedSettings(limiter=f"sqlite:///{blocked / 'gemb2' / 'q.sqlite'}"))


@pytest.mark.parametrize("command", ["index", "embed", "migrate"])
def test_fixed_concurrency_turns_the_adaptive_window_off(command: str) -> None:
    """--fixed-concurrency reaches the Embedder the command builds: a plain semaphore of
    --max-concurrency; without it the window adapts."""
    from gemb2.cli.main import _Session, build_parser

    positional = {
        "index": ["notes"],
        "embed": ["a"],
        "migrate": ["--from-collection", "a", "--to-collection", "b"],
    }[command]
    base = [command, *positional, "--base-url", "http://127.0.0.1:9", "--max-concurrency", "6"]
    for extra, adaptive in (([], True), (["--fixed-concurrency"], False)):
        args = build_parser().parse_args([*base, *extra])
        settings = _Session(args).settings()
        settings.pop("limiter", None)
        gate = Embedder(**settings).gate
        assert (gate.adaptive, gate.limit) == (adaptive, 6)
