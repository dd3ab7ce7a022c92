"""Shared fixtures: a real emulator over loopback HTTP and generated media files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemb2.testing.emulator import Emulator, EmulatorConfig

# no test reaches Google by accident: the keys leave the environment; the live contract
# suite (GEMB2_LIVE=1, tests/contract) gets them back through the live_credentials fixture
_LIVE_CREDENTIALS = {
    _var: os.environ.pop(_var)
    for _var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")
    if _var in os.environ
}
# offline: no telemetry threads trying the network
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"
os.environ["ANONYMIZED_TELEMETRY"] = "False"


@pytest.fixture(autouse=True)
def _no_writes_to_the_users_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``gemb2`` command's default limiter (``auto``) is a file under
    ``$XDG_CACHE_HOME``: every test, and the processes it starts, gets its own one, so the
    suite never writes to the user's home and no test is paced by another's bookings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(scope="session")
def live_credentials() -> dict[str, str]:
    """The API keys this run started with (removed from the environment for every test)."""
    return dict(_LIVE_CREDENTIALS)


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    with Emulator(port=0, config=EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: Emulator) -> Iterator[Emulator]:
    """The shared emulator with knobs reset and counters zeroed for each test."""
    emulator_session.configure(**EmulatorConfig().model_dump())
    emulator_session.reset_stats()
    yield emulator_session
    # leave it clean for fixtures that use the session emulator directly
    emulator_session.configure(**EmulatorConfig().model_dump())
    emulator_session.reset_stats()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful of small real media files with descriptive text inside them."""
    from gemb2.testing import samples

    d = tmp_path_factory.mktemp("media")
    samples.make_png(d / "red_circle.png", "a red circle", color=(255, 0, 0), shape="circle")
    samples.make_png(d / "blue_square.png", "a blue square", color=(0, 0, 255), shape="square")
    samples.make_jpeg(d / "yellow_star.jpg", "a yellow star", color=(255, 220, 0), shape="star")
    samples.make_wav(d / "piano.wav", 3, description="a piano playing a single note")
    samples.make_mp4(d / "waves.mp4", 4, description="ocean waves at a beach")
    samples.make_pdf(
        d / "three_pages.pdf",
        ["volcanoes erupt lava", "honeybees make honey", "glaciers carve valleys"],
    )
    return d


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on 127.0.0.1; yields its URL and stops it afterwards."""
    import shutil
    import subprocess
    import sys
    import time

    import httpx

    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert exe, "the chroma command is installed with chromadb"
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"chroma server did not start: {(path / 'server.log').read_text()}"
                )
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
