"""A large media run streams: items are read and checked just ahead of their calls,
the bytes read but not landed stay within the read-ahead bound, vectors stay in input
order, and a bad item deep in the run stops it with its own error while every call
already answered lands (issue 20, media at scale). FakeTransport records the calls."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gemb2 import Embedder, InputError, MediaReadError
from gemb2.testing import FakeTransport, samples

N = 60


class Watched(os.PathLike[str]):
    """A path that notes each time it is opened (``os.fspath``) in a shared log."""

    def __init__(self, path: Path, index: int, log: list[tuple[str, int]]) -> None:
        self.path, self.index, self.log = path, index, log

    def __fspath__(self) -> str:
        self.log.append(("open", self.index))
        return str(self.path)


class Recording(FakeTransport):
    """FakeTransport that also notes each call in the same log, with its item count."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        super().__init__()
        self.log = log

    def post(self, call):  # type: ignore[no-untyped-def]
        self.log.append(("call", len(call.items)))
        return super().post(call)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("stream")
    out = []
    for i in range(N):
        if i % 4 == 3:
            out.append(samples.make_wav(d / f"a{i}.wav", 0.5, description=f"tone {i}"))
        elif i % 4 == 2:
            out.append(samples.make_pdf(d / f"d{i}.pdf", [f"page one of {i}", "page two"]))
        else:
            out.append(samples.make_png(d / f"p{i}.png", f"picture {i}", size=(64, 48)))
    return out


def small_calls(files: list[Path]) -> dict[str, int]:
    """Settings that cut the run into many calls and a read-ahead of a few of them."""
    size = max(p.stat().st_size for p in files)
    return {"max_call_bytes": 2 * size, "max_inflight_bytes": 4 * size}


def reads(log: list[tuple[str, int]]) -> list[int]:
    """Positions in ``log`` where each item was read (its second open: the first is the
    cheap up-front check)."""
    seen: dict[int, int] = {}
    at = []
    for pos, (kind, i) in enumerate(log):
        if kind == "open":
            seen[i] = seen.get(i, 0) + 1
            if seen[i] == 2:
                at.append(pos)
    return at


def test_first_call_goes_before_the_last_item_is_read(files: list[Path]) -> None:
    log: list[tuple[str, int]] = []
    watched = [Watched(p, i, log) for i, p in enumerate(files)]
    emb = Embedder(
        transport=Recording(log), dimensions=128, max_concurrency=1, **small_calls(files)
    )
    vectors = emb.embed(watched)
    assert len(vectors) == N
    read_at = reads(log)
    assert len(read_at) == N  # each item read once, after its cheap check
    calls = [pos for pos, (kind, _) in enumerate(log) if kind == "call"]
    assert len(calls) >= 10
    # overlap: the first call is sent before most items are read
    assert calls[0] < read_at[-1]
    assert sum(1 for pos in read_at if pos < calls[0]) < N // 2
    # every cheap check (first opens) came before any call
    first_opens = [pos for pos, (k, _) in enumerate(log) if k == "open"][:N]
    assert max(first_opens) < calls[0]


def test_read_ahead_bound_and_order_kept(files: list[Path]) -> None:
    fake = FakeTransport()
    limits = small_calls(files)
    emb = Embedder(transport=fake, dimensions=128, max_concurrency=4, **limits)
    landed: list[int] = []
    vectors = emb.embed(files, on_batch=lambda idx, _v: landed.extend(idx))
    ahead = emb.read_ahead
    assert ahead is not None
    assert ahead.limit == 2 * limits["max_inflight_bytes"]
    assert 0 < ahead.peak <= ahead.limit
    assert ahead.peak < sum(p.stat().st_size for p in files) / 2  # never the whole run
    assert ahead.used == 0  # everything given back
    assert emb._budget.peak <= limits["max_inflight_bytes"]
    assert sorted(landed) == list(range(N))
    # the same vectors, in the same order, as one unstreamed call of everything
    whole = Embedder(transport=FakeTransport(), dimensions=128, max_call_bytes=2**30)
    assert whole.embed(files) == vectors
    assert whole.read_ahead is None  # one call's worth: not streamed
    assert len(fake.calls) >= 10


def test_async_streams_the_same(files: list[Path]) -> None:
    log: list[tuple[str, int]] = []
    watched = [Watched(p, i, log) for i, p in enumerate(files)]
    emb = Embedder(
        transport=Recording(log), dimensions=128, max_concurrency=2, **small_calls(files)
    )
    vectors = asyncio.run(emb.aembed(watched))
    calls = [pos for pos, (kind, _) in enumerate(log) if kind == "call"]
    assert calls[0] < reads(log)[-1]
    assert emb.read_ahead is not None
    assert 0 < emb.read_ahead.peak <= emb.read_ahead.limit
    whole = Embedder(transport=FakeTransport(), dimensions=128, max_call_bytes=2**30)
    assert whole.embed(files) == vectors


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_bad_item_deep_in_the_run(files: list[Path], tmp_path: Path, driver: str) -> None:
    bad = 40
    long_pdf = samples.make_pdf(tmp_path / "long.pdf", [f"page {k}" for k in range(9)])
    inputs = [*files[:bad], long_pdf, *files[bad:]]
    fake = FakeTransport()
    emb = Embedder(transport=fake, dimensions=128, max_concurrency=2, **small_calls(files))
    landed: dict[int, list[float]] = {}

    def on_batch(idx: list[int], vecs: list[list[float]]) -> None:
        landed.update(zip(idx, vecs, strict=True))

    with pytest.raises(InputError) as info:
        if driver == "sync":
            emb.embed(inputs, on_batch=on_batch)
        else:
            asyncio.run(emb.aembed(inputs, on_batch=on_batch))
    assert info.value.item == bad
    assert "long.pdf" in str(info.value) and "page" in str(info.value)
    # calls were sent before the bad item was reached, and every answered one landed
    sent = sum(len(body["requests"]) for body in fake.calls)
    assert 0 < sent < len(inputs)
    assert len(landed) == sent
    assert max(landed) < bad
    whole = Embedder(transport=FakeTransport(), dimensions=128, max_call_bytes=2**30)
    expected = whole.embed(files[:bad])
    assert all(landed[i] == expected[i] for i in landed)


def test_missing_or_empty_file_anywhere_is_refused_before_any_call(
    files: list[Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for odd, why in ((tmp_path / "gone.png", "no such file"), (empty, "empty")):
        fake = FakeTransport()
        emb = Embedder(transport=fake, dimensions=128, **small_calls(files))
        with pytest.raises(MediaReadError) as info:
            emb.embed([*files, odd])
        assert info.value.item == N
        assert why in str(info.value) and odd.name in str(info.value)
        assert fake.calls == []


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_copies_in_different_spans_are_sent_once(files: list[Path], driver: str) -> None:
    inputs = [*files, files[0], files[5]]  # copies of items of the first spans, at the end
    fake = FakeTransport()
    emb = Embedder(transport=fake, dimensions=128, max_concurrency=2, **small_calls(files))
    landed: list[int] = []

    def on_batch(idx: list[int], _v: list[list[float]]) -> None:
        landed.extend(idx)

    if driver == "sync":
        vectors = emb.embed(inputs, on_batch=on_batch)
    else:
        vectors = asyncio.run(emb.aembed(inputs, on_batch=on_batch))
    assert sum(len(body["requests"]) for body in fake.calls) == N
    assert vectors[N] == vectors[0] and vectors[N + 1] == vectors[5]
    assert sorted(landed) == list(range(N + 2))
    assert emb.usage.deduplicated == 2
