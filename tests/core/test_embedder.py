"""The core Embedder against the emulator over real HTTP with the real google-genai SDK."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pytest

from gemb2 import (
    Embedder,
    InputError,
    Item,
    LimitExceededError,
    Media,
    MediaReadError,
    RetryExhaustedError,
    VectorCache,
)
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

SECRET = "AIzaSy-TEST-SECRET-0123456789"


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def make(emulator: Emulator, **kw: object) -> Embedder:
    return Embedder(base_url=emulator.base_url, **kw)  # type: ignore[arg-type]


def test_250_texts_three_calls_in_order(emulator: Emulator) -> None:
    texts = [f"document number {i} about topic {i % 7}" for i in range(250)]
    emb = make(emulator, dimensions=768)
    out = emb.embed(texts)
    assert len(out) == 250
    assert emulator.stats.requests == 3
    assert all(len(v) == 768 for v in out)
    # each vector is the one that text gets on its own: nothing reordered
    for i in (0, 99, 100, 173, 249):
        assert out[i] == pytest.approx(emb.embed([texts[i]])[0], abs=1e-9)
    assert len({tuple(v[:8]) for v in out}) == 250
    assert emb.usage.items == 250 + 5


def test_sdk_trap_one_content_per_item(emulator: Emulator) -> None:
    out = make(emulator).embed(["a", "b", "c"])
    assert len(out) == 3
    body = emulator.stats.last_bodies[-1]
    assert len(body["requests"]) == 3
    assert [r["content"]["parts"][0]["text"] for r in body["requests"]] == [
        "title: none | text: a",
        "title: none | text: b",
        "title: none | text: c",
    ]


def test_text_and_image_item_gives_one_vector(emulator: Emulator, media_dir: Path) -> None:
    item = Item.of(["a photo of", media_dir / "red_circle.png"])
    out = make(emulator).embed([item])
    assert len(out) == 1 and len(out[0]) == 3072
    parts = emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"]
    assert len(parts) == 2
    assert parts[0] == {"text": "a photo of"}  # media items carry no prefix


def test_query_and_document_prefixes(emulator: Emulator) -> None:
    emb = make(emulator, task="question_answering")
    emb.embed_query("why is the sky blue")
    req = emulator.stats.last_bodies[-1]["requests"][0]
    assert (
        req["content"]["parts"][0]["text"]
        == "task: question answering | query: why is the sky blue"
    )
    assert "taskType" not in req
    emb.embed([Item.of("Rayleigh scattering", title="Sky")], role="document")
    req = emulator.stats.last_bodies[-1]["requests"][0]
    assert req["content"]["parts"][0]["text"] == "title: Sky | text: Rayleigh scattering"


def test_001_uses_task_type_and_raw_opt_out(emulator: Emulator) -> None:
    emb = make(emulator, model="gemini-embedding-001", dimensions=768)
    emb.embed_query("hello")
    req = emulator.stats.last_bodies[-1]["requests"][0]
    assert req["taskType"] == "RETRIEVAL_QUERY"
    assert req["content"]["parts"][0]["text"] == "hello"
    make(emulator, task="raw").embed_query("hello")
    req = emulator.stats.last_bodies[-1]["requests"][0]
    assert req["content"]["parts"][0]["text"] == "hello"


def test_768_normalised_and_emulator_raw_is_not(emulator: Emulator) -> None:
    v = make(emulator, dimensions=768).embed(["some text"])[0]
    assert norm(v) == pytest.approx(1.0, abs=1e-9)
    raw = make(emulator, dimensions=768, normalize=False).embed(["some text"])[0]
    assert abs(norm(raw) - 1.0) > 1e-3  # so the normalisation above did real work


def test_text_query_finds_matching_image(emulator: Emulator, media_dir: Path) -> None:
    emb = make(emulator, dimensions=768)
    docs = emb.embed([media_dir / "red_circle.png", media_dir / "blue_square.png"])
    q = emb.embed_query("red circle")
    assert cos(q, docs[0]) > cos(q, docs[1])


@pytest.mark.parametrize(
    "case",
    ["seven_images", "seven_page_pdf", "long_audio", "long_video", "empty_text", "corrupt_image"],
)
def test_bad_items_rejected_before_any_request(
    case: str, emulator: Emulator, media_dir: Path, tmp_path: Path
) -> None:
    good = "a fine text"
    if case == "seven_images":
        bad: object = Item.of([media_dir / "red_circle.png"] * 7)
        err, words = LimitExceededError, ["7 image", "6 image"]
    elif case == "seven_page_pdf":
        bad = samples.make_pdf(tmp_path / "seven.pdf", [f"page {i}" for i in range(7)])
        err, words = LimitExceededError, ["7 pages", "6 pages"]
    elif case == "long_audio":
        bad = samples.make_wav(tmp_path / "long.wav", 90)
        err, words = LimitExceededError, ["90.0 s", "80 s"]
    elif case == "long_video":
        bad = samples.make_mp4(tmp_path / "long.mp4", 130)
        err, words = LimitExceededError, ["130.0 s", "120 s"]
    elif case == "empty_text":
        bad = "   "
        err, words = InputError, ["text is empty"]
    else:
        data = (media_dir / "red_circle.png").read_bytes()
        (tmp_path / "broken.png").write_bytes(data[: len(data) // 2])
        bad = tmp_path / "broken.png"
        err, words = MediaReadError, ["broken.png", "cannot decode image"]
    with pytest.raises(err) as info:
        make(emulator).embed([good, good, bad])  # type: ignore[list-item]
    message = str(info.value)
    assert info.value.item == 2
    assert message.startswith("item 2")
    for w in words:
        assert w in message
    assert emulator.stats.requests == 0


def test_dimension_out_of_range_is_rejected() -> None:
    from gemb2 import ConfigError

    with pytest.raises(ConfigError, match="128..3072"):
        Embedder(dimensions=64)


def test_retries_survive_faults_without_loss_or_reorder(emulator: Emulator) -> None:
    texts = [f"fault tolerant text {i}" for i in range(600)]
    clean = make(emulator, dimensions=256).embed(texts)
    emulator.configure(fault_rate=0.3, faults=("429", "503"), retry_delay=0.05, seed=7)
    emulator.reset_stats()
    emb = make(emulator, dimensions=256, backoff_initial=0.01, backoff_max=0.1, max_retries=20)
    out = emb.embed(texts)
    assert out == clean
    assert sum(emulator.stats.faults.values()) > 0
    assert emb.usage.retries == sum(emulator.stats.faults.values())


def test_retry_honours_server_delay(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("429",), retry_delay=2.0, fail_first=1)
    emb = make(emulator, backoff_initial=0.01, backoff_max=0.05)
    t0 = time.monotonic()
    out = emb.embed(["patience"])
    assert len(out) == 1
    assert time.monotonic() - t0 >= 2.0
    assert emb.usage.retries == 1


def test_dropped_connections_are_retried(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("drop",), fail_first=2)
    emb = make(emulator, backoff_initial=0.01, backoff_max=0.05)
    assert len(emb.embed(["still here"])) == 1
    assert emb.usage.retries == 2


def test_retry_budget_exhausted_is_clear(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("503",))
    emb = make(emulator, backoff_initial=0.0, backoff_max=0.0, max_retries=2)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(["x"])
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"
    assert "3 attempts" in str(info.value)


def test_secret_absent_from_repr_errors_and_logs(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    explicit = Embedder(api_key=SECRET, base_url=emulator.base_url)
    from_env = Embedder(base_url=emulator.base_url, max_retries=1, backoff_initial=0)
    emulator.configure(fault_rate=1.0, faults=("500",))
    texts = [repr(explicit), repr(from_env), repr(explicit.settings), str(explicit.settings)]
    for emb in (explicit, from_env):
        with pytest.raises(Exception) as info:
            emb.embed(["x"])
        texts += [str(info.value), repr(info.value)]
    with pytest.raises(Exception) as bad:
        Embedder(api_key=SECRET, dimensions=1)
    texts += [str(bad.value), caplog.text]
    assert all(SECRET not in t for t in texts)
    assert "retrying" in caplog.text  # the log really captured the run


def test_cache_serves_repeats_without_calls(emulator: Emulator, tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "cache.sqlite")
    first = make(emulator, cache=cache).embed(["alpha", "beta"])
    emulator.reset_stats()
    again = make(emulator, cache=VectorCache(tmp_path / "cache.sqlite")).embed(["beta", "alpha"])
    assert emulator.stats.requests == 0
    assert again == [first[1], first[0]]


def test_media_from_bytes_url_and_pil(emulator: Emulator, media_dir: Path) -> None:
    from PIL import Image

    data = (media_dir / "red_circle.png").read_bytes()
    with Image.open(media_dir / "red_circle.png") as img:
        pil = Media.from_image(img)
    items = [Media.from_bytes(data), pil, Media.from_url("gs://bucket/x.png")]
    assert [m.mime_type for m in items] == ["image/png"] * 3
    out = make(emulator).embed(items)
    assert len(out) == 3
    assert (
        emulator.stats.last_bodies[-1]["requests"][2]["content"]["parts"][0]["file_data"][
            "file_uri"
        ]
        == "gs://bucket/x.png"
    )


async def test_async_path(emulator: Emulator) -> None:
    emb = make(emulator, dimensions=128, batch_size=10)
    texts = [f"async {i}" for i in range(35)]
    out = await emb.aembed(texts)
    assert len(out) == 35 and emulator.stats.requests == 4
    assert out == make(emulator, dimensions=128).embed(texts)


def test_vertex_ai_path(emulator: Emulator) -> None:
    """google-genai 3.4+ sends the three contents in one Vertex :batchEmbedContents call;
    older SDKs take one content per :embedContent call (more raises ValueError), so
    the Embedder sends three. CI runs both: the lowest and the latest resolution."""
    from google.oauth2.credentials import Credentials

    from gemb2.transport.genai import SDK_VERSION, VERTEX_BATCH_SDK

    emb = Embedder(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=Credentials(token="t"),
        base_url=emulator.base_url,
        dimensions=768,
    )
    out = emb.embed(["one", "two", "three"])
    assert len(out) == 3 and all(len(v) == 768 for v in out)
    bodies = emulator.stats.last_bodies
    if SDK_VERSION >= VERTEX_BATCH_SDK:
        assert emulator.stats.requests == 1 and len(bodies[0]["requests"]) == 3
        assert "embedContentConfig" in bodies[0]["requests"][0]
    else:
        assert emulator.stats.requests == 3
        assert all("requests" not in b and "embedContentConfig" in b for b in bodies)
    assert out == make(emulator, dimensions=768).embed(["one", "two", "three"])
    assert "Credentials" not in repr(emb) and "credentials" not in emb.settings.model_dump()


def test_non_finite_or_zero_vectors_are_refused() -> None:
    from gemb2 import ResponseMismatchError
    from gemb2.transport.base import CallResult

    emb = Embedder(base_url="http://127.0.0.1:1", dimensions=128)
    batch = emb.prepare(["a", "b"])
    good = [1.0] * 128
    assert emb._validate(batch, CallResult([good, [2.0] * 128], None))[1][0] == pytest.approx(
        128**-0.5
    )
    for bad in ([float("nan")] * 128, [0.0] * 128, [float("inf")] + [0.0] * 127):
        with pytest.raises(ResponseMismatchError, match="item 1: vector is zero or holds NaN"):
            emb._validate(batch, CallResult([good, bad], None))
    with pytest.raises(ResponseMismatchError, match="got a 3-d vector"):
        emb._validate(batch, CallResult([good, [1.0, 2.0, 3.0]], None))


def test_a_bad_row_is_reported_by_position_in_a_typed_error() -> None:
    """The Embedder names the failing item from ``.row``, not by parsing a message."""
    from gemb2.engine.vectors import BadVectorError, checked_rows

    rows = [[1.0, 0.0], [0.0, 1.0], [float("inf"), 0.0]]
    with pytest.raises(BadVectorError) as info:
        checked_rows(rows, normalize=True)
    assert (info.value.row, info.value.reason) == (2, "vector is zero or holds NaN or infinity")
    assert isinstance(info.value, ValueError)
    with pytest.raises(BadVectorError) as zero:
        checked_rows([[1.0, 0.0], [0.0, 0.0]], normalize=True)
    assert zero.value.row == 1
    assert checked_rows([[1.0, 0.0], [0.0, 0.0]], normalize=False)[1] == [0.0, 0.0]


def test_prepare_returns_public_prepared_items() -> None:
    """``prepare`` is public and so is what it returns: checked, conditioned items that
    Batch Mode and the wrappers build on, before any call."""
    from gemb2 import PreparedItem

    emb = Embedder(base_url="http://127.0.0.1:1", dimensions=128, cache=VectorCache())
    doc, query = emb.prepare(["a cat"]) + emb.prepare(["a cat"], role="query")
    assert isinstance(doc, PreparedItem) and isinstance(query, PreparedItem)
    assert (doc.index, doc.modality, doc.text) == (0, "text", "title: none | text: a cat")
    assert query.text == "task: search result | query: a cat"
    assert doc.tokens["text"] > 0 and doc.size == len(doc.text.encode())
    assert doc.key and doc.key != query.key  # cache addresses differ by role
    assert emb.usage.requests == 0


def test_a_failing_on_batch_stops_further_calls(emulator: Emulator) -> None:
    """When storing a batch fails, the calls not yet started are cancelled (they would be
    paid for and thrown away); the batches stored before it stay stored."""
    emulator.configure(latency_per_request=0.1)
    stored: list[int] = []

    class StoreDown(RuntimeError):
        pass

    def on_batch(indices: list[int], vectors: list[list[float]]) -> None:
        if stored:
            raise StoreDown("the vector store went away")
        stored.extend(indices)

    emb = make(emulator, dimensions=128, batch_size=10, max_concurrency=2)
    with pytest.raises(StoreDown, match="went away"):
        emb.embed([f"text {i}" for i in range(100)], on_batch=on_batch)
    assert len(stored) == 10
    # two calls in flight when the second batch failed to store, at most one more started
    assert 2 <= emulator.stats.requests <= 5


def test_each_batch_lands_while_later_calls_are_still_to_come(emulator: Emulator) -> None:
    """on_batch hands over a batch as soon as it arrives, not after the last call."""
    emulator.configure(latency_per_request=0.2)
    seen: list[tuple[list[int], int]] = []

    def on_batch(indices: list[int], vectors: list[list[float]]) -> None:
        seen.append((indices, emulator.stats.requests))

    emb = make(emulator, dimensions=128, batch_size=10, max_concurrency=2)
    out = emb.embed([f"text {i}" for i in range(60)], on_batch=on_batch)
    assert len(out) == 60 and len(seen) == 6
    assert sorted(i for indices, _ in seen for i in indices) == list(range(60))
    # the first batch landed when at most 3 of the 6 calls had been sent
    assert seen[0][1] <= 3
