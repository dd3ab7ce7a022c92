"""gemb2.testing.FakeTransport: the emulator's answers in process, for users' unit tests.

The same inputs must get the same vectors as the emulator over HTTP through the real SDK,
every call is recorded, no socket is opened, and the emulator's faults can be injected.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from gemb2 import Embedder, Item, Media, RetryExhaustedError
from gemb2.testing import FakeTransport
from gemb2.testing.emulator import Emulator
from gemb2.transport.base import Transport


def mixed(media_dir: Path) -> list[object]:
    return [
        "a red circle",
        "volcanoes erupt lava",
        media_dir / "red_circle.png",
        media_dir / "piano.wav",
        media_dir / "three_pages.pdf",
        Item.of(["a caption", Media.from_path(media_dir / "blue_square.png")]),
    ]


@pytest.mark.parametrize("dims", [768, 3072])
@pytest.mark.parametrize("role", ["document", "query"])
def test_vectors_equal_the_emulators_over_http(
    emulator: Emulator, media_dir: Path, dims: int, role: str
) -> None:
    inputs = mixed(media_dir)
    over_http = Embedder(base_url=emulator.base_url, dimensions=dims).embed(inputs, role=role)  # type: ignore[arg-type]
    fake = FakeTransport()
    in_process = Embedder(transport=fake, dimensions=dims).embed(inputs, role=role)  # type: ignore[arg-type]
    assert in_process == over_http
    assert len(fake.calls) == 1 and len(fake.calls[0]["requests"]) == len(inputs)
    assert fake.stats.items == len(inputs)


def test_it_opens_no_socket(monkeypatch: pytest.MonkeyPatch, media_dir: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("FakeTransport opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    vectors = Embedder(transport=FakeTransport(), dimensions=128).embed(mixed(media_dir))  # type: ignore[arg-type]
    assert len(vectors) == 6 and all(len(v) == 128 for v in vectors)


def test_every_call_is_recorded_with_its_body() -> None:
    fake = FakeTransport()
    emb = Embedder(transport=fake, dimensions=256, batch_size=40)
    emb.embed([f"text {i}" for i in range(100)])
    # the calls run concurrently: they may be recorded in any order
    assert sorted(len(c["requests"]) for c in fake.calls) == [20, 40, 40]
    firsts = [c["requests"][0] for c in fake.calls]
    texts = sorted(r["content"]["parts"][0]["text"] for r in firsts)
    assert texts == [f"title: none | text: text {i}" for i in (0, 40, 80)]
    first = next(r for r in firsts if r["content"]["parts"][0]["text"].endswith(" text 0"))
    assert first["model"] == "models/gemini-embedding-2"
    assert first["outputDimensionality"] == 256
    assert first["content"]["parts"] == [{"text": "title: none | text: text 0"}]
    assert emb.usage.requests == 3


def test_it_is_a_transport() -> None:
    assert isinstance(FakeTransport(), Transport)


def test_faults_are_injected_and_retried() -> None:
    fake = FakeTransport(fault_rate=1.0, faults=["503"], fail_first=2)
    emb = Embedder(transport=fake, backoff_initial=0.0, backoff_max=0.0)
    assert len(emb.embed(["a", "b"])) == 2
    assert emb.usage.requests == 3 and emb.usage.retries == 2
    assert fake.stats.faults == {"503": 2}


@pytest.mark.parametrize("fault", ["drop", "429", "truncated", "wrong_count"])
def test_each_fault_kind_reaches_the_engine_as_over_http(fault: str) -> None:
    fake = FakeTransport(fault_rate=1.0, faults=[fault], retry_delay=0.0)
    emb = Embedder(transport=fake, max_retries=1, backoff_initial=0.0, backoff_max=0.0)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(["a", "b"])
    assert info.value.attempts == 2 and emb.usage.requests == 2
    fake.configure(fault_rate=0.0)
    assert len(emb.embed(["a", "b"])) == 2


def test_the_async_path() -> None:
    fake = FakeTransport()
    emb = Embedder(transport=fake, dimensions=128, batch_size=10)
    vectors = asyncio.run(emb.aembed([f"t{i}" for i in range(35)]))
    assert len(vectors) == 35 and len(fake.calls) == 4
    assert vectors == Embedder(transport=FakeTransport(), dimensions=128).embed(
        [f"t{i}" for i in range(35)]
    )
