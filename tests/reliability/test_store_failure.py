"""A store that fails mid-run: the Chroma server behind ``--chroma-url`` is killed while
``gemb2 index`` runs, or a write is refused. The command prints one line (what failed,
what is stored, that a re-run resumes) and exits 2, with the true stored count; the API
raises ``StoreError`` carrying the same report. A re-run completes the collection."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest
from chromadb.config import Settings
from rel_helpers import DIMS, make_corpus

from gemb2 import Embedder
from gemb2.ingest.indexer import IndexReport, index_paths
from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection
from gemb2.testing.emulator import Emulator

FAKE_KEY = "AIzaSyD-gemb2-test-key-0123456789abcdef"


class ChromaServer:
    """A real ``chroma run`` on 127.0.0.1 over a data folder, which a test may kill and
    start again (on a new port) to see what it kept."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        exe = shutil.which("chroma", path=str(Path(sys.executable).parent))
        assert exe, "the chroma command is installed with chromadb"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        log = (self.data.parent / f"chroma-{port}.log").open("wb")
        self.proc = subprocess.Popen(
            [exe, "run", "--path", str(self.data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "chroma server exited at start"
            assert time.monotonic() < deadline, "chroma server did not start"
            time.sleep(0.2)

    def kill(self) -> None:
        """The server dies: SIGKILL, no shutdown of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> Any:
        port = int(self.url.rsplit(":", 1)[1])
        return chromadb.HttpClient(
            host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False)
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChromaServer]:
    srv = ChromaServer(tmp_path / "chroma-data")
    srv.start()
    yield srv
    srv.stop()


def _count(srv: ChromaServer, name: str = "gemb2") -> int:
    try:
        return int(srv.client().get_collection(name).count())
    except Exception:  # not created yet
        return 0


def test_cli_when_the_chroma_server_dies_prints_one_line_with_the_stored_count_and_exits_2(
    quiet_emulator: Emulator, server: ChromaServer, tmp_path: Path
) -> None:
    emu = quiet_emulator
    folder = tmp_path / "corpus"
    make_corpus(folder, 400, media=False)  # two rounds of 200 items, two calls each
    db = tmp_path / "db"
    argv = [
        sys.executable,
        "-m",
        "gemb2.cli.main",
        "index",
        str(folder),
        "--chroma-url",
        server.url,
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
        "--dimensions",
        str(DIMS),
        "-q",
    ]
    env = {**os.environ, "GOOGLE_API_KEY": FAKE_KEY, "ANONYMIZED_TELEMETRY": "False"}
    # each call takes 1.5 s: the first round's writes are over long before the next land
    emu.configure(latency_per_request=1.5)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 180
        while _count(server) < 200:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the indexer stored nothing"
            time.sleep(0.02)
        server.kill()
        out, err = (s.decode() for s in proc.communicate(timeout=180))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "httpx" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("gemb2 index: error: the vector store failed while ")
    assert "ConnectError" in line or "RemoteProtocolError" in line or "ReadError" in line
    found = re.search(r"(\d+) items stored by this run before the failure", line)
    assert found, line
    stored = int(found.group(1))
    # we killed it once 200 were stored, before the rest; writes go 100 at a time, and the
    # kill may cut off the answer to the last of them (stored, never acknowledged)
    assert 100 <= stored < 400
    assert "index the same paths again to resume" in line
    assert FAKE_KEY not in line and "AIza" not in line
    assert out == ""

    # the count was true: a server started again on the same data holds that (plus, at
    # most, the one write whose answer the kill cut off: stored, but never acknowledged)
    server.start()
    held = _count(server)
    assert stored <= held <= stored + 100
    emu.configure(latency_per_request=0.0)
    emu.reset_stats()
    rerun = subprocess.run(
        [server.url if a == argv[6] else a for a in argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"indexed {400 - held} files ({400 - held} items)" in rerun.stdout
    assert f"{held} unchanged" in rerun.stdout
    assert emu.stats.items <= 400 - held
    got = server.client().get_collection("gemb2").get(include=["metadatas"])
    assert len(got["ids"]) == 400 == len({m["source"] for m in got["metadatas"]})


class _DiesAfterFirstWrite:
    """The real collection; the server behind it is killed right after the first write
    it acknowledged (the indexer's own calls are untouched)."""

    def __init__(self, collection: Any, server: ChromaServer) -> None:
        self.collection = collection
        self.server = server
        self.writes = 0

    def get(self, **kwargs: Any) -> Any:
        return self.collection.get(**kwargs)

    def delete(self, **kwargs: Any) -> Any:
        return self.collection.delete(**kwargs)

    def upsert(self, **kwargs: Any) -> Any:
        self.collection.upsert(**kwargs)
        self.writes += 1
        self.server.kill()


def test_api_raises_store_error_with_the_report_and_the_cause(
    emulator: Emulator, server: ChromaServer, tmp_path: Path
) -> None:
    from gemb2.errors import StoreError

    folder = tmp_path / "corpus"
    make_corpus(folder, 120, media=False)
    embedder = Embedder(base_url=emulator.base_url, dimensions=DIMS, api_key=FAKE_KEY)
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    collection = open_collection(server.client(), "gemb2", ef)
    dying = _DiesAfterFirstWrite(collection, server)
    report = IndexReport()

    with pytest.raises(StoreError) as caught:
        index_paths([folder], dying, embedder, chunk_items=50, report=report)
    err = caught.value
    assert dying.writes == 1
    assert err.report is report and report.items_written == 50
    assert isinstance(err.__cause__, httpx.TransportError)
    assert "50 items stored by this run before the failure" in str(err)
    assert "\n" not in str(err) and FAKE_KEY not in str(err)

    server.start()
    collection = open_collection(server.client(), "gemb2", ef)
    assert collection.count() == 50
    report = index_paths([folder], collection, embedder, chunk_items=50)
    assert (report.files_unchanged, report.items_written) == (50, 70)
    assert collection.count() == 120


class _DeletedMidRun:
    """Another process deletes the collection after the first write: Chroma refuses the
    next one (NotFoundError), which is a store failure like any other."""

    def __init__(self, client: Any, collection: Any) -> None:
        self.client = client
        self.collection = collection

    def get(self, **kwargs: Any) -> Any:
        return self.collection.get(**kwargs)

    def delete(self, **kwargs: Any) -> Any:
        return self.collection.delete(**kwargs)

    def upsert(self, **kwargs: Any) -> Any:
        self.collection.upsert(**kwargs)
        self.client.delete_collection(self.collection.name)


def test_a_refused_write_is_a_store_error_too(emulator: Emulator, tmp_path: Path) -> None:
    from gemb2.errors import StoreError

    folder = tmp_path / "corpus"
    make_corpus(folder, 30, media=False)
    client = chromadb.PersistentClient(
        path=str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False)
    )
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    embedder = Embedder(base_url=emulator.base_url, dimensions=DIMS)
    target = _DeletedMidRun(client, open_collection(client, "gemb2", ef))
    with pytest.raises(StoreError) as caught:
        index_paths([folder], target, embedder, chunk_items=10)
    assert caught.value.report.items_written == 10
    assert type(caught.value.__cause__).__module__.startswith("chromadb")
    assert "the vector store failed while" in str(caught.value)


def test_the_store_error_line_carries_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from gemb2.ingest.indexer import _brief, _secrets

    key = FAKE_KEY
    monkeypatch.setenv("CHROMA_CLIENT_AUTH_CREDENTIALS", "chroma-token-42")
    embedder = Embedder(api_key="configured-key-1234", base_url="http://127.0.0.1:9")
    exc = httpx.ConnectError(
        f"cannot reach https://admin:hunter2@db.example:8000/ as chroma-token-42\n"
        f"with configured-key-1234 and {key}"
    )
    line = _brief(exc, _secrets(embedder))
    assert line.startswith("ConnectError: cannot reach https://***@db.example:8000/")
    assert "\n" not in line
    for secret in ("hunter2", "chroma-token-42", "configured-key-1234", key):
        assert secret not in line
