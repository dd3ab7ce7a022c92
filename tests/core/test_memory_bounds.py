"""Bytes in flight are bounded: per call, across concurrent calls, and by deferred pieces.

Issue #8: indexing a long video must not hold every piece (nor every call's copies of
them) in memory at once. Everything runs against the emulator over real HTTP.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from gemb2 import Embedder, InputError, Limits, MediaReadError
from gemb2.ingest.indexer import index_paths
from gemb2.ingest.loading import load_file
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("budget")
    return [
        samples.make_png(d / f"img{i}.png", f"picture number {i}", size=(160, 120))
        for i in range(12)
    ]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 5 minutes: 3 pieces of at most 120 s (2 s overlap), no re-encoding
    d = tmp_path_factory.mktemp("longvideo")
    return samples.make_mp4(d / "lecture.mp4", 300, description="a long lecture", fps=10)


def _inline_sizes(body: dict) -> list[int]:
    """Decoded size of every inline part of one request body the emulator recorded."""
    sizes = []
    for req in body.get("requests", []):
        for part in req.get("content", {}).get("parts", []):
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                sizes.append(len(blob["data"]) * 3 // 4)
    return sizes


def test_call_byte_budget_packs_media_into_more_calls(
    emulator: Emulator, images: list[Path]
) -> None:
    size = max(p.stat().st_size for p in images)
    total = sum(p.stat().st_size for p in images)
    budget = 3 * size + 10  # at most 3 images per call
    plain = Embedder(base_url=emulator.base_url, dimensions=128, max_concurrency=1)
    expected = plain.embed(images)
    assert emulator.stats.requests == 1  # all 12 fit one call by default
    emulator.reset_stats()
    emb = Embedder(
        base_url=emulator.base_url, dimensions=128, max_concurrency=1, max_call_bytes=budget
    )
    got = emb.embed(images)
    assert got == expected  # same vectors, same order
    assert emulator.stats.requests == 4
    assert emulator.stats.items == 12
    for body in emulator.stats.last_bodies:
        sizes = _inline_sizes(body)
        assert 1 <= len(sizes) <= 3
        assert sum(sizes) <= budget
    assert sum(sum(_inline_sizes(b)) for b in emulator.stats.last_bodies) == pytest.approx(
        total, rel=0.01
    )


def test_one_item_over_the_call_budget_goes_alone(emulator: Emulator, images: list[Path]) -> None:
    emb = Embedder(base_url=emulator.base_url, dimensions=128, max_call_bytes=1)
    assert len(emb.embed(images[:3])) == 3
    assert emulator.stats.requests == 3


def test_inflight_byte_budget_bounds_concurrent_calls(
    emulator: Emulator, images: list[Path]
) -> None:
    emulator.configure(latency_per_request=0.05)
    size = max(p.stat().st_size for p in images)
    kw = {"base_url": emulator.base_url, "dimensions": 128, "max_concurrency": 4}
    # one image per call, 4 calls may run at once: without a byte budget 4 are in flight
    free = Embedder(**kw, max_call_bytes=size)
    expected = free.embed(images)
    assert free._budget.peak >= 3 * min(p.stat().st_size for p in images)
    emulator.reset_stats()
    tight = Embedder(**kw, max_call_bytes=size, max_inflight_bytes=2 * size)
    assert tight.embed(images) == expected
    assert emulator.stats.requests == 12
    assert 0 < tight._budget.peak <= 2 * size
    assert tight._budget.used == 0  # every call gave its share back


async def test_inflight_byte_budget_async(emulator: Emulator, images: list[Path]) -> None:
    emulator.configure(latency_per_request=0.05)
    size = max(p.stat().st_size for p in images)
    emb = Embedder(
        base_url=emulator.base_url,
        dimensions=128,
        max_call_bytes=size,
        max_inflight_bytes=size,
    )
    vectors = await emb.aembed(images)
    assert len(vectors) == 12
    budget = next(iter(emb._abudgets.values()))
    assert 0 < budget.peak <= size
    assert budget.used == 0
    await emb.aclose()


async def test_a_cancelled_aembed_sends_nothing_more_and_gives_its_budget_back(
    emulator: Emulator, images: list[Path]
) -> None:
    """Cancelling ``aembed`` (a timeout, a closed request) cancels its calls: the ones in
    flight give their share of the byte budget back, the ones waiting are never sent."""
    import asyncio

    emulator.configure(latency_per_request=3.0)
    size = max(p.stat().st_size for p in images)
    emb = Embedder(
        base_url=emulator.base_url,
        dimensions=128,
        max_call_bytes=size,
        max_inflight_bytes=2 * size,  # two images in flight at a time, 12 calls
    )
    run = asyncio.ensure_future(emb.aembed(images))
    for _ in range(600):  # until both calls are in flight (no fixed sleep)
        if emulator.stats.requests >= 2:
            break
        await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    budget = next(iter(emb._abudgets.values()))
    for _ in range(1200):  # the cancelled calls unwind on the loop
        if budget.used == 0:
            break
        await asyncio.sleep(0.05)
    assert budget.used == 0
    assert emulator.stats.requests == 2 == emb.usage.requests  # both were sent: counted
    assert emb.usage.items == 0
    await emb.aclose()


def test_text_never_waits_for_the_byte_budget(emulator: Emulator) -> None:
    emb = Embedder(base_url=emulator.base_url, dimensions=128, max_inflight_bytes=1)
    assert len(emb.embed([f"text {i}" for i in range(250)])) == 250
    assert emulator.stats.requests == 3
    assert emb._budget.peak == 0


def test_deferred_pieces_hold_no_bytes_and_embed_the_same(
    emulator: Emulator, long_video: Path
) -> None:
    eager = load_file(long_video)
    lazy = load_file(long_video, defer=True)
    assert len(eager) == len(lazy) == 3
    for e, d in zip(eager, lazy, strict=True):
        assert e.metadata == d.metadata
        (em,), (dm,) = e.media, d.media
        assert dm.data is None and dm.loader is not None
        assert dm.size == em.size and dm.name == em.name and dm.mime_type == em.mime_type
        assert dm.read() == em.data
        assert dm.digest == em.digest
    emb = Embedder(base_url=emulator.base_url, dimensions=128)
    assert emb.embed(lazy) == emb.embed(eager)


def test_deferred_whole_file_is_read_again_when_sent(
    emulator: Emulator, images: list[Path], tmp_path: Path
) -> None:
    path = tmp_path / "one.png"
    path.write_bytes(images[0].read_bytes())
    (item,) = load_file(path, defer=True)
    assert item.media[0].data is None
    emb = Embedder(base_url=emulator.base_url, dimensions=128)
    assert emb.embed([item]) == emb.embed([images[0]])
    path.write_bytes(b"")  # changed on disk after it was planned: a clear error, no guess
    with pytest.raises(MediaReadError, match="expected"):
        emb.embed([item])


def test_indexing_a_long_video_keeps_about_one_call_in_memory(
    emulator: Emulator, long_video: Path, tmp_path: Path
) -> None:
    """Python-allocated peak while indexing (this process runs the emulator too, so its
    decoding of each request counts) stays near one piece's copies in flight: before
    pieces were deferred and bounded, all pieces went in one call and the peak over the
    baseline was about 22x the largest piece (12.5 MB for 0.58 MB pieces); now about 11x."""
    import chromadb

    from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

    pieces = load_file(long_video)
    largest = max(it.media[0].size for it in pieces)
    del pieces
    warm_a = samples.make_mp4(tmp_path / "warm_a.mp4", 4, description="warm up")
    warm_b = samples.make_mp4(tmp_path / "warm_b.mp4", 5, description="baseline")
    client = chromadb.EphemeralClient()
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=128)
    col = open_collection(client, "memory", ef)
    # the defaults (4 MiB per call, 8 MiB in flight) scaled to these small pieces
    emb = Embedder(
        base_url=emulator.base_url,
        dimensions=128,
        max_call_bytes=largest,
        max_inflight_bytes=largest,
    )
    index_paths([warm_a], col, emb)  # first-use costs (Chroma, the SDK) out of the way

    def peak_of(path: Path) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            report = index_paths([path], col, emb)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert not report.skipped

    base = peak_of(warm_b)
    emulator.reset_stats()
    peak = peak_of(long_video)
    assert emulator.stats.requests == 3  # one piece per call, one call at a time
    assert emb._budget.peak == largest
    assert col.count() == 3 + 2
    assert peak - base < 14 * largest, (peak, base, largest)


def test_many_media_checked_in_a_pool_raise_the_first_bad_item(
    emulator: Emulator, images: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    data = images[0].read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    inputs: list[object] = [*images]
    inputs[5] = broken
    inputs[9] = samples.make_wav(tmp_path / "long.wav", 90)
    emb = Embedder(base_url=emulator.base_url, dimensions=128)
    with pytest.raises(MediaReadError) as info:
        emb.embed(inputs)  # type: ignore[arg-type]
    assert info.value.item == 5 and str(info.value).startswith("item 5")
    inputs[11] = tmp_path / "missing.png"  # cannot be coerced: reported first, as before
    with pytest.raises(InputError) as info2:
        emb.embed(inputs)  # type: ignore[arg-type]
    assert info2.value.item == 11
    assert emulator.stats.requests == 0


def test_limits_still_cap_a_call(emulator: Emulator, images: list[Path]) -> None:
    size = max(p.stat().st_size for p in images)
    emb = Embedder(
        base_url=emulator.base_url,
        dimensions=128,
        limits=Limits(max_inline_bytes=2 * size + 10),
    )
    emb.embed(images)
    assert emulator.stats.requests == 6
