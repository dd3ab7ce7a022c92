"""gemb2.batch against the emulator over real HTTP: submit, poll, collect, failures, media."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from batch_helpers import DIMS, texts

from gemb2 import ConfigError, Embedder, InputError, Item, VectorCache
from gemb2.batch.embedder import BatchEmbedder
from gemb2.batch.records import CostEstimate, JobFailedError, JobPendingError
from gemb2.batch.store import JobStore
from gemb2.model.catalog import BATCH_DISCOUNT, PRICE_PER_MILLION_TOKENS
from gemb2.testing.emulator import Emulator


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_1000_texts_give_the_online_vectors(
    emu: Emulator, embedder: Embedder, batch: BatchEmbedder, mode: str
) -> None:
    docs = texts(1000)
    online = embedder.embed(docs)
    online_requests = emu.stats.requests
    keys = [f"doc-{i}" for i in range(1000)]
    sub = batch.submit(docs, keys=keys, mode=mode)  # type: ignore[arg-type]
    assert emu.stats.requests == online_requests  # no online call: it all went to the job
    assert len(sub.jobs) == 1
    job = sub.jobs[0]
    assert job.mode == mode and job.count == 1000 and job.state == "JOB_STATE_PENDING"
    assert emu.batch.stats.uploads == (1 if mode == "file" else 0)
    batch.wait(job.name, poll_interval=0.02, timeout=30)
    result = batch.collect(job.name)
    assert result.failures == [] and result.fallback == []
    assert result.keys == keys
    assert result.vectors == online  # the same requests give the same vectors
    assert result.billed_tokens is not None and result.billed_tokens > 0
    assert batch.store.get(job.name).collected is not None
    if mode == "file":
        assert job.input_file is not None and job.input_file not in emu.batch.files  # cleaned up


def test_auto_mode_chooses_inline_then_files(embedder: Embedder, store: JobStore) -> None:
    docs = texts(30)
    small = BatchEmbedder(embedder, store).submit(docs)
    assert [j.mode for j in small.jobs] == ["inline"]
    tight = BatchEmbedder(embedder, store, inline_max_bytes=2_000, file_max_bytes=3_000)
    sub = tight.submit(docs)
    assert [j.mode for j in sub.jobs] == ["file"] * len(sub.jobs) and len(sub.jobs) >= 2
    assert sum(j.count for j in sub.jobs) == 30
    with pytest.raises(InputError, match="cannot submit inline"):
        tight.submit(docs, mode="inline")


def test_failing_items_are_reported_and_the_rest_returned(
    emu: Emulator, embedder: Embedder, batch: BatchEmbedder
) -> None:
    emu.configure(batch_fail_indices=(3, 10, 17))
    docs = texts(20)
    sub = batch.submit(
        docs, keys=[f"k{i}" for i in range(20)], payloads=[{"i": i} for i in range(20)]
    )
    batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
    result = batch.collect(sub.jobs[0].name)
    assert sorted(f.key for f in result.failures) == ["k10", "k17", "k3"]
    assert all(f.code == 13 and "internal error" in f.message for f in result.failures)
    assert [f.payload for f in result.failures] == [{"i": 3}, {"i": 10}, {"i": 17}]
    assert len(result.keys) == 17 and "k3" not in result.keys
    assert result.payloads[0] == {"i": 0}
    online = embedder.embed([docs[0], docs[19]])
    assert result.vector_of("k0") == online[0] and result.vector_of("k19") == online[1]
    record = batch.store.get(sub.jobs[0].name)
    assert (record.stored, record.failed) == (17, 3)


def test_collect_from_a_new_process_state(emu: Emulator, tmp_path: Path) -> None:
    """Everything needed to collect lives in the store: a fresh Embedder and store collect."""
    path = tmp_path / "jobs.sqlite"
    with Embedder(base_url=emu.base_url, dimensions=DIMS) as first:
        sub = BatchEmbedder(first, JobStore(path)).submit(texts(5), keys=list("abcde"))
        want = first.embed(texts(5))
    name = sub.jobs[0].name.removeprefix("batches/")  # the prefix may be left off
    with Embedder(base_url=emu.base_url, dimensions=DIMS) as second:
        later = BatchEmbedder(second, JobStore(path))
        later.wait(name, poll_interval=0.02, timeout=30)
        result = later.collect(name)
    assert result.keys == list("abcde") and result.vectors == want


def test_pending_and_failed_jobs(emu: Emulator, batch: BatchEmbedder) -> None:
    emu.configure(batch_hold="RUNNING")
    name = batch.submit(["a", "b"]).jobs[0].name
    with pytest.raises(JobPendingError, match="RUNNING") as err:
        batch.collect(name)
    assert err.value.state == "JOB_STATE_RUNNING"
    t0 = time.monotonic()
    with pytest.raises(JobPendingError):
        batch.wait(name, poll_interval=0.05, timeout=0.2)
    assert time.monotonic() - t0 < 5
    assert batch.refresh(name).state == "JOB_STATE_RUNNING"
    emu.configure(batch_hold=None, batch_final_state="EXPIRED", batch_delay=0)
    expired = batch.submit(["c"]).jobs[0].name
    with pytest.raises(JobFailedError, match="EXPIRED"):
        batch.collect(expired)
    assert batch.refresh(name).short_state == "SUCCEEDED"  # it kept its own final state
    assert [j.short_state for j in batch.store.jobs()] == ["SUCCEEDED", "EXPIRED"]


def test_media_go_online_by_default(
    emu: Emulator, embedder: Embedder, batch: BatchEmbedder, media_dir: Path
) -> None:
    got: dict[str, list[float]] = {}

    def on_online(keys: list[str], vectors: list[list[float]]) -> None:
        got.update(zip(keys, vectors, strict=True))

    image = Item.from_path(media_dir / "red_circle.png")
    assert not batch.accepts(image) and batch.accepts("text")
    sub = batch.submit(["a red circle", image], keys=["t", "img"], on_online=on_online)
    assert sub.online_keys == ["img"] and list(got) == ["img"]
    assert got["img"] == embedder.embed([image])[0]
    assert sub.jobs[0].count == 1
    assert sub.online_estimate.tokens == {"image": 258}
    batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
    assert batch.collect(sub.jobs[0].name).keys == ["t"]


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_media_refused_by_batch_mode_fall_back_online(
    emu: Emulator, embedder: Embedder, store: JobStore, media_dir: Path, mode: str
) -> None:
    emu.configure(batch_accepts_media=False)
    batch = BatchEmbedder(embedder, store, media="batch")
    image = Item.from_path(media_dir / "red_circle.png")
    pdf = Item.from_path(media_dir / "three_pages.pdf")
    sub = batch.submit(["a red circle", image, pdf], keys=["t", "img", "pdf"], mode=mode)  # type: ignore[arg-type]
    assert sub.jobs[0].count == 3 and sub.online_keys == []
    batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
    result = batch.collect(sub.jobs[0].name)
    assert [f.key for f in result.fallback] == ["img", "pdf"] and result.failures == []
    assert all(f.code == 3 and "does not accept media" in f.message for f in result.fallback)
    assert result.vector_of("img") == embedder.embed([image])[0]
    assert result.vector_of("pdf") == embedder.embed([pdf])[0]
    again = batch.collect(sub.jobs[0].name, fallback_online=False)
    assert sorted(f.key for f in again.failures) == ["img", "pdf"]
    assert all(f.code == 3 and "does not accept media" in f.message for f in again.failures)


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_a_job_refused_for_its_media_sends_them_online(
    emu: Emulator, embedder: Embedder, store: JobStore, media_dir: Path, mode: str
) -> None:
    emu.configure(batch_accepts_media=False, batch_media_refusal="job")
    batch = BatchEmbedder(embedder, store, media="batch")
    image = Item.from_path(media_dir / "red_circle.png")
    got: dict[str, list[float]] = {}
    files_before = set(emu.batch.files)
    sub = batch.submit(
        ["a red circle", image, "a blue square"],
        keys=["t1", "img", "t2"],
        mode=mode,  # type: ignore[arg-type]
        on_online=lambda keys, vectors: got.update(zip(keys, vectors, strict=True)),
    )
    assert sub.refused_media is not None and "does not accept media" in sub.refused_media
    assert sub.online_keys == ["img"] and got == {"img": embedder.embed([image])[0]}
    assert sub.online_estimate.tokens == {"image": 258} and "image" not in sub.estimate.tokens
    assert len(sub.jobs) == 1 and sub.jobs[0].count == 2
    # the refused job's upload was deleted; only the resubmitted job's input is left
    expected = {sub.jobs[0].input_file} if mode == "file" else set()
    assert set(emu.batch.files) - files_before == expected
    batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
    assert batch.collect(sub.jobs[0].name).keys == ["t1", "t2"]


def test_media_accepted_by_batch_mode_stay_in_the_job(
    emu: Emulator, embedder: Embedder, store: JobStore, media_dir: Path
) -> None:
    batch = BatchEmbedder(embedder, store, media="batch")
    image = Item.from_path(media_dir / "red_circle.png")
    sub = batch.submit([image], keys=["img"], mode="file")
    batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
    before = emu.stats.requests
    result = batch.collect(sub.jobs[0].name)
    assert emu.stats.requests == before and result.fallback == []
    assert result.vectors == embedder.embed([image])


def test_cache_is_filled_on_collect_and_serves_the_next_submit(
    emu: Emulator, store: JobStore
) -> None:
    cache = VectorCache()
    with Embedder(base_url=emu.base_url, dimensions=DIMS, cache=cache) as emb:
        batch = BatchEmbedder(emb, store)
        docs = texts(4)
        sub = batch.submit(docs)
        batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
        result = batch.collect(sub.jobs[0].name)
        assert len(cache) == 4
        seen: list[str] = []
        again = batch.submit(docs, on_online=lambda keys, vectors: seen.extend(keys))
        assert again.jobs == [] and again.cached == 4 and seen == ["0", "1", "2", "3"]
        before = emu.stats.requests
        assert emb.embed(docs) == result.vectors  # online calls hit the same cache
        assert emu.stats.requests == before


def test_submit_and_poll_survive_faults(emu: Emulator, store: JobStore) -> None:
    emu.configure(fault_rate=1.0, faults=("503", "429"), fail_first=3, retry_delay=0.01)
    with Embedder(
        base_url=emu.base_url, dimensions=DIMS, backoff_initial=0.01, backoff_max=0.05
    ) as emb:
        batch = BatchEmbedder(emb, store)
        sub = batch.submit(texts(3))
        batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
        assert len(batch.collect(sub.jobs[0].name).keys) == 3
    assert sum(emu.stats.faults.values()) == 3
    assert emu.batch.stats.created == 1


def test_a_create_whose_answer_was_lost_is_not_made_twice(emu: Emulator, store: JobStore) -> None:
    emu.configure(fault_rate=1.0, faults=("drop",), fail_first=1)
    before = set(emu.batch.jobs)
    with Embedder(base_url=emu.base_url, dimensions=DIMS, backoff_initial=0.01) as emb:
        batch = BatchEmbedder(emb, store)
        sub = batch.submit(texts(3))
        assert emu.stats.faults == {"drop": 1}
        assert set(emu.batch.jobs) - before == {sub.jobs[0].name}  # one job, adopted
        batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
        assert len(batch.collect(sub.jobs[0].name).keys) == 3


def test_inputs_are_checked_before_any_call(emu: Emulator, batch: BatchEmbedder) -> None:
    with pytest.raises(InputError, match="unique"):
        batch.submit(["a", "b"], keys=["x", "x"])
    with pytest.raises(InputError, match="2 items but 1 keys"):
        batch.submit(["a", "b"], keys=["x"])
    with pytest.raises(InputError, match="item 1"):
        batch.submit(["fine", "word " * 20000])
    with pytest.raises(InputError, match="no batch job"):
        batch.collect("batches/unknown")
    assert emu.batch.stats.created == 0


def test_vertex_is_refused_clearly() -> None:
    emb = Embedder(vertexai=True, project="p", location="us-central1")
    with pytest.raises(ConfigError, match="Gemini Developer API"):
        BatchEmbedder(emb)


def test_cost_estimate_is_half_price() -> None:
    est = CostEstimate({"text": 1_000_000, "video": 10_000})
    online = PRICE_PER_MILLION_TOKENS["text"] + PRICE_PER_MILLION_TOKENS["video"] / 100
    assert est.online == pytest.approx(online)
    assert est.batch == pytest.approx(online * BATCH_DISCOUNT)
    table = "\n".join(est.table())
    assert "$0.2000" in table and "$0.1000" in table and "(50%)" in table


def test_no_secret_in_the_store_or_reprs(emu: Emulator, tmp_path: Path) -> None:
    secret = "AIza-very-secret-test-key-123"
    path = tmp_path / "jobs.sqlite"
    with Embedder(base_url=emu.base_url, dimensions=DIMS, api_key=secret) as emb:
        batch = BatchEmbedder(emb, JobStore(path))
        sub = batch.submit(["a"], context={"collection": "c"})
        batch.wait(sub.jobs[0].name, poll_interval=0.02, timeout=30)
        batch.collect(sub.jobs[0].name)
        assert secret not in repr(batch) and secret not in repr(sub)
    batch.store.close()
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes()
