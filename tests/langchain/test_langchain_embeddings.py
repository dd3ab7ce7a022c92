"""GeminiEmbeddings over real HTTP to the emulator: roles, media, interleaving, async, secrets."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings
from pydantic import ValidationError

from gemb2 import InputError, LimitExceededError, MediaReadError, UnsupportedMediaError
from gemb2.testing.emulator import Emulator
from langchain_gemb2 import GeminiEmbeddings

DIMS = 768  # the dimension of the `embeddings` fixture

SECRET = "AIzaSy-LANGCHAIN-SECRET-1234567890"
MEDIA = {
    "red_circle.png": "image/png",
    "yellow_star.jpg": "image/jpeg",
    "piano.wav": "audio/wav",
    "waves.mp4": "video/mp4",
    "three_pages.pdf": "application/pdf",
}


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _requests(emulator: Emulator) -> list[dict]:
    return [r for body in emulator.stats.last_bodies for r in body.get("requests", [body])]


def _parts(request: dict) -> list[dict]:
    return request["content"]["parts"]


def _inline(part: dict) -> dict | None:
    return part.get("inline_data") or part.get("inlineData")


def test_is_a_langchain_embeddings_with_partner_settings() -> None:
    emb = GeminiEmbeddings(api_key=SECRET, dimensions=1536, task="semantic_similarity")
    assert isinstance(emb, Embeddings)
    assert emb.model == "gemini-embedding-2"
    assert emb.google_api_key is not None
    assert emb.google_api_key.get_secret_value() == SECRET
    assert emb.output_dimensions == 1536
    assert GeminiEmbeddings().output_dimensions == 3072
    assert emb.embedder.settings.task == "semantic_similarity"
    # the google_api_key name is accepted too (populate_by_name)
    assert GeminiEmbeddings(google_api_key=SECRET).google_api_key is not None


def test_key_from_either_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-env")
    emb = GeminiEmbeddings()
    assert emb.google_api_key is not None
    assert emb.google_api_key.get_secret_value() == "from-gemini-env"
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    assert GeminiEmbeddings().google_api_key.get_secret_value() == "from-google-env"  # type: ignore[union-attr]


def test_vertex_settings_reach_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-from-env")
    emb = GeminiEmbeddings(vertexai=True, location="europe-west4")
    s = emb.embedder.settings
    assert (s.vertexai, s.project, s.location) == (True, "proj-from-env", "europe-west4")


def test_bad_settings_are_rejected_at_construction_and_assignment() -> None:
    with pytest.raises(ValidationError, match="dimensions=5 is out of range"):
        GeminiEmbeddings(dimensions=5)
    with pytest.raises(ValidationError, match="unknown|not a known|model"):
        GeminiEmbeddings(model="text-embedding-004")
    with pytest.raises(ValidationError):
        GeminiEmbeddings(task="searching")
    with pytest.raises(ValidationError, match="extra"):
        GeminiEmbeddings(output_dim=7)
    emb = GeminiEmbeddings(dimensions=768)
    with pytest.raises(ValidationError):
        emb.dimensions = 99999
    assert emb.dimensions == 768 and emb.output_dimensions == 768  # left as it was
    emb.dimensions = 256
    assert emb.output_dimensions == 256  # a valid change reaches the engine


def test_documents_and_queries_use_their_roles(
    embeddings: GeminiEmbeddings, emulator: Emulator
) -> None:
    docs = embeddings.embed_documents(["the cat sat", "a dog barked", "rain fell"])
    assert len(docs) == 3 and all(len(v) == DIMS for v in docs)
    assert all(isinstance(x, float) for x in docs[0])
    assert all(math.isclose(_dot(v, v), 1.0, rel_tol=1e-6) for v in docs)
    q = embeddings.embed_query("where did the cat sit")
    assert len(q) == DIMS
    texts = [_parts(r)[0]["text"] for r in _requests(emulator)]
    assert texts == [
        "title: none | text: the cat sat",
        "title: none | text: a dog barked",
        "title: none | text: rain fell",
        "task: search result | query: where did the cat sit",
    ]
    assert {r["outputDimensionality"] for r in _requests(emulator)} == {DIMS}
    assert emulator.stats.requests == 2  # three documents go in one batch call
    # the query lands nearest the document it shares words with
    scores = [_dot(q, d) for d in docs]
    assert scores.index(max(scores)) == 0
    assert embeddings.usage.items == 4 and embeddings.usage.requests == 2


def test_symmetric_task_conditions_both_sides_alike(emulator: Emulator) -> None:
    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS, task="clustering")
    emb.embed_documents(["alpha"])
    emb.embed_query("alpha")
    texts = [_parts(r)[0]["text"] for r in _requests(emulator)]
    assert texts == ["task: clustering | query: alpha"] * 2


def test_strings_are_text_never_paths(
    embeddings: GeminiEmbeddings, emulator: Emulator, media_dir: Path
) -> None:
    path = str(media_dir / "red_circle.png")
    embeddings.embed_documents([path])
    (request,) = _requests(emulator)
    assert _parts(request) == [{"text": f"title: none | text: {path}"}]
    with pytest.raises(InputError, match="item 1.*expected a string"):
        embeddings.embed_documents(["ok", media_dir / "red_circle.png"])  # type: ignore[list-item]


def test_empty_input_makes_no_call(embeddings: GeminiEmbeddings, emulator: Emulator) -> None:
    assert embeddings.embed_documents([]) == []
    assert embeddings.embed_image([]) == []
    assert emulator.stats.requests == 0


def test_embed_image_takes_every_media_kind(
    embeddings: GeminiEmbeddings, emulator: Emulator, media_dir: Path
) -> None:
    names = list(MEDIA)
    uris: list = [str(media_dir / names[0]), (media_dir / names[1]).as_uri()]
    uris += [media_dir / n for n in names[2:]]  # Path objects too
    vectors = embeddings.embed_image(uris=uris)
    assert len(vectors) == len(names) and all(len(v) == DIMS for v in vectors)
    requests = _requests(emulator)
    assert len(requests) == len(names)
    for request, name in zip(requests, names, strict=True):
        (part,) = _parts(request)  # media: one part, no prefix text
        blob = _inline(part)
        assert blob is not None and (blob.get("mime_type") or blob.get("mimeType")) == MEDIA[name]
    # a text query finds each file by what it shows
    for query, expected in {
        "a red circle": "red_circle.png",
        "a yellow star": "yellow_star.jpg",
        "a piano playing": "piano.wav",
        "ocean waves at a beach": "waves.mp4",
        "honeybees make honey": "three_pages.pdf",
    }.items():
        q = embeddings.embed_query(query)
        scores = [_dot(q, v) for v in vectors]
        assert names[scores.index(max(scores))] == expected, (query, scores)


def test_embed_image_errors_name_the_item(embeddings: GeminiEmbeddings, media_dir: Path) -> None:
    with pytest.raises(MediaReadError, match="item 1") as info:
        embeddings.embed_image([str(media_dir / "red_circle.png"), str(media_dir / "nope.png")])
    assert info.value.item == 1
    junk = media_dir.parent / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02 not media at all")
    with pytest.raises(UnsupportedMediaError):
        embeddings.embed_image([str(junk)])
    with pytest.raises(TypeError, match="list of URIs"):
        embeddings.embed_image(str(media_dir / "red_circle.png"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="scheme"):
        embeddings.embed_image(["ftp://example.com/a.png"])


def test_media_over_the_limits_is_refused_before_any_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    from gemb2.testing import samples

    pdf = samples.make_pdf(tmp_path / "eight.pdf", [f"page {i}" for i in range(8)])
    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS)
    with pytest.raises(LimitExceededError, match="6"):
        emb.embed_image([str(pdf)])
    assert emulator.stats.requests == 0


def test_interleaved_item_is_one_vector(
    embeddings: GeminiEmbeddings, emulator: Emulator, media_dir: Path
) -> None:
    from gemb2 import Item, Media

    red = media_dir / "red_circle.png"
    vectors = embeddings.embed_items(
        [
            ["a photo of", red],  # interleaved: one content, two parts
            Item(parts=("caption", Media.from_path(media_dir / "blue_square.png"))),
            "just text",
            media_dir / "piano.wav",
        ]
    )
    assert len(vectors) == 4 and all(len(v) == DIMS for v in vectors)
    requests = _requests(emulator)
    assert [len(_parts(r)) for r in requests] == [2, 2, 1, 1]
    assert _parts(requests[0])[0] == {"text": "a photo of"}  # media items carry no prefix
    assert _inline(_parts(requests[0])[1]) is not None
    q = embeddings.embed_items(["a red circle"], role="query")[0]
    assert _dot(q, vectors[0]) > _dot(q, vectors[1])
    with pytest.raises(ValueError, match="role"):
        embeddings.embed_items(["x"], role="search")


async def test_async_methods(
    embeddings: GeminiEmbeddings, emulator: Emulator, media_dir: Path
) -> None:
    docs = await embeddings.aembed_documents(["one", "two"])
    q = await embeddings.aembed_query("one")
    images = await embeddings.aembed_image([str(media_dir / "red_circle.png")])
    items = await embeddings.aembed_items([["red", media_dir / "red_circle.png"]])
    assert [len(docs), len(images), len(items)] == [2, 1, 1]
    assert len(q) == DIMS
    assert docs == embeddings.embed_documents(["one", "two"])  # same vectors both ways
    assert q == embeddings.embed_query("one")


async def test_async_is_not_a_thread_pool(emulator: Emulator) -> None:
    """LangChain's default aembed_* run the sync method in the loop's executor; with that
    executor cut to one thread, eight slow calls would take eight times as long."""
    emulator.configure(latency_per_request=0.4)
    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS, max_concurrency=8)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    try:
        await emb.aembed_query("warm up")  # client and connection setup
        start = time.perf_counter()
        results = await asyncio.gather(*(emb.aembed_query(f"query {i}") for i in range(8)))
        elapsed = time.perf_counter() - start
    finally:
        emulator.configure(latency_per_request=0.0)
    assert len(results) == 8 and len({tuple(r) for r in results}) == 8
    assert elapsed < 8 * 0.4 * 0.6, f"calls ran one after another: {elapsed:.2f}s"


def test_retries_transient_faults(emulator: Emulator) -> None:
    emulator.configure(fault_rate=0.5, faults=("503", "429"), retry_delay=0.0, seed=3)
    emb = GeminiEmbeddings(
        base_url=emulator.base_url,
        dimensions=DIMS,
        batch_size=1,
        max_retries=10,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    vectors = emb.embed_documents([f"text {i}" for i in range(6)])
    assert len(vectors) == 6 and all(len(v) == DIMS for v in vectors)
    faults = sum(emulator.stats.faults.values())
    assert faults > 0
    # every fault was retried by the core (a slow machine may add a timeout or two)
    assert emb.usage.retries >= faults
    assert emb.usage.requests == emulator.stats.requests


def test_secret_never_leaks(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    emb = GeminiEmbeddings(api_key=SECRET, base_url=emulator.base_url, dimensions=DIMS)
    emb.embed_query("hello")
    with pytest.raises(InputError) as bad_input:
        emb.embed_documents([""])
    with pytest.raises(ValidationError) as bad_setting:
        GeminiEmbeddings(api_key=SECRET, dimensions=1)
    emulator.configure(fault_rate=1.0, faults=("500",))
    try:
        emb2 = GeminiEmbeddings(
            api_key=SECRET, base_url=emulator.base_url, max_retries=0, dimensions=DIMS
        )
        with pytest.raises(Exception) as api_failure:
            emb2.embed_query("boom")
    finally:
        emulator.configure(fault_rate=0.0)
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    from_env = GeminiEmbeddings()
    seen = [
        repr(emb),
        str(emb),
        repr(from_env),
        emb.model_dump_json(),
        from_env.model_dump_json(),
        str(emb.model_dump()),
        repr(emb.embedder),
        str(bad_input.value),
        str(bad_setting.value),
        str(api_failure.value),
        repr(api_failure.value),
        caplog.text,
    ]
    for text in seen:
        assert SECRET not in text
    assert "**********" in repr(emb)
