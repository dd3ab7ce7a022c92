"""The Haystack components against the emulator over real HTTP with the real google-genai SDK."""

from __future__ import annotations

import base64
import logging
import math
from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.dataclasses import ByteStream, ImageContent
from haystack.utils import Secret
from haystack_integrations.components.embedders.gemb2 import (
    GeminiDocumentEmbedder,
    GeminiMediaQueryEmbedder,
    GeminiTextEmbedder,
)

from gemb2 import (
    ConfigError,
    InputError,
    LimitExceededError,
    MediaReadError,
    RetryExhaustedError,
    UnsupportedMediaError,
)
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator
from haystack_gemb2 import GeminiDocumentEmbedder as DirectImport

SECRET = "AIzaSy-HAYSTACK-SECRET-0123456789"
DIM = 256


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def doc_embedder(emulator: Emulator, **kw: object) -> GeminiDocumentEmbedder:
    kw.setdefault("dimensions", DIM)
    kw.setdefault("progress_bar", False)
    return GeminiDocumentEmbedder(api_base_url=emulator.base_url, **kw)  # type: ignore[arg-type]


def b64(data: str) -> bytes:
    """The SDK sends url-safe base64."""
    return base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_"))


def parts_of(body: dict, i: int = 0) -> list[dict]:
    return body["requests"][i]["content"]["parts"]


# -- text embedder -------------------------------------------------------------------------


def test_text_embedder_query_role_and_meta(emulator: Emulator) -> None:
    embedder = GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM)
    out = embedder.run("a red circle")
    assert len(out["embedding"]) == DIM
    assert all(isinstance(x, float) for x in out["embedding"])
    assert math.isclose(math.sqrt(dot(out["embedding"], out["embedding"])), 1.0, rel_tol=1e-9)
    assert out["meta"]["model"] == "gemini-embedding-2"
    assert out["meta"]["dimensions"] == DIM
    assert out["meta"]["usage"]["requests"] == 1
    assert out["meta"]["usage"]["items"] == 1
    assert out["meta"]["usage"]["modalities"] == {"text": 1}
    assert emulator.stats.requests == 1
    body = emulator.stats.last_bodies[-1]
    assert parts_of(body) == [{"text": "task: search result | query: a red circle"}]
    assert body["requests"][0]["outputDimensionality"] == DIM


def test_text_embedder_prefix_suffix_and_usage_is_per_run(emulator: Emulator) -> None:
    embedder = GeminiTextEmbedder(
        api_base_url=emulator.base_url, dimensions=DIM, prefix="Q: ", suffix=" ?"
    )
    embedder.run("one")
    second = embedder.run("two")
    assert second["meta"]["usage"]["requests"] == 1  # this run's, not the total
    assert parts_of(emulator.stats.last_bodies[-1]) == [
        {"text": "task: search result | query: Q: two ?"}
    ]


def test_text_embedder_rejects_non_strings(emulator: Emulator) -> None:
    embedder = GeminiTextEmbedder(api_base_url=emulator.base_url)
    with pytest.raises(TypeError, match="GeminiDocumentEmbedder"):
        embedder.run([Document(content="x")])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="text is empty"):
        embedder.run("   ")
    assert emulator.stats.requests == 0


def test_symmetric_task_uses_query_format_for_documents(emulator: Emulator) -> None:
    doc_embedder(emulator, task="clustering").run([Document(content="cats")])
    assert parts_of(emulator.stats.last_bodies[-1]) == [{"text": "task: clustering | query: cats"}]


async def test_text_embedder_run_async(emulator: Emulator) -> None:
    embedder = GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM)
    sync = embedder.run("glaciers carve valleys")["embedding"]
    out = await embedder.run_async("glaciers carve valleys")
    assert out["embedding"] == pytest.approx(sync, abs=1e-12)
    assert out["meta"]["usage"]["requests"] == 1
    assert emulator.stats.requests == 2
    await embedder.close_async()


# -- document embedder: text -----------------------------------------------------------------


def test_document_embedder_returns_new_documents(emulator: Emulator) -> None:
    docs = [Document(content=f"document {i} about topic {i % 5}", meta={"n": i}) for i in range(7)]
    out = doc_embedder(emulator).run(docs)
    new = out["documents"]
    assert [d.id for d in new] == [d.id for d in docs]
    assert all(d.embedding is None for d in docs)  # inputs untouched
    assert all(n is not o for n, o in zip(new, docs, strict=True))
    assert all(n.meta is not o.meta and n.meta == o.meta for n, o in zip(new, docs, strict=True))
    assert all(len(d.embedding or []) == DIM for d in new)
    assert len({tuple(d.embedding[:6]) for d in new if d.embedding}) == 7
    assert out["meta"]["usage"]["items"] == 7
    assert "failed" not in out["meta"]


def test_document_embedder_batches_with_the_core(emulator: Emulator) -> None:
    docs = [Document(content=f"text number {i}") for i in range(205)]
    out = doc_embedder(emulator, batch_size=50).run(docs)
    assert emulator.stats.requests == 5
    assert emulator.stats.items == 205
    assert out["meta"]["usage"]["requests"] == 5
    # order kept: the 173rd document's vector is the one it gets alone
    alone = doc_embedder(emulator).run([docs[173]])["documents"][0].embedding
    assert out["documents"][173].embedding == pytest.approx(alone, abs=1e-12)


def test_meta_fields_separator_prefix_suffix_and_title(emulator: Emulator) -> None:
    doc = Document(content="body text", meta={"topic": "bees", "year": 2024, "name": "Bees"})
    doc_embedder(
        emulator,
        meta_fields_to_embed=["topic", "missing", "year"],
        embedding_separator=" | ",
        prefix="<",
        suffix=">",
        title_meta_field="name",
    ).run([doc])
    assert parts_of(emulator.stats.last_bodies[-1]) == [
        {"text": "title: Bees | text: <bees | 2024 | body text>"}
    ]


def test_text_documents_with_a_text_file_path_stay_text(emulator: Emulator, tmp_path: Path) -> None:
    """Converters set meta['file_path'] on every document: a .txt source is not media."""
    (tmp_path / "notes.txt").write_text("whatever the file says")
    doc = Document(content="the chunk text", meta={"file_path": "notes.txt"})
    doc_embedder(emulator, root_path=str(tmp_path)).run([doc])
    assert parts_of(emulator.stats.last_bodies[-1]) == [
        {"text": "title: none | text: the chunk text"}
    ]


def test_empty_document_is_an_error_naming_it(emulator: Emulator) -> None:
    docs = [Document(content="fine"), Document(content="")]
    with pytest.raises(InputError, match="no text and no media") as info:
        doc_embedder(emulator).run(docs)
    assert info.value.item == 1
    assert docs[1].id in str(info.value)
    assert emulator.stats.requests == 0


def test_wrong_input_type(emulator: Emulator) -> None:
    with pytest.raises(TypeError, match="list of Documents"):
        doc_embedder(emulator).run("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of Documents"):
        doc_embedder(emulator).run([Document(content="a"), "b"])  # type: ignore[list-item]


# -- document embedder: media ------------------------------------------------------------------


def test_media_documents_by_path_blob_and_interleaved(emulator: Emulator, media_dir: Path) -> None:
    docs = [
        Document(content="", meta={"file_path": "red_circle.png"}),
        Document(
            content="a caption",
            blob=ByteStream((media_dir / "blue_square.png").read_bytes(), mime_type="image/png"),
        ),
        Document(content="a sound", meta={"file_path": "piano.wav"}),
        Document(content="", meta={"file_path": "waves.mp4"}),
    ]
    out = doc_embedder(emulator, root_path=str(media_dir), embed_file_with_content=True).run(docs)
    assert [len(d.embedding or []) for d in out["documents"]] == [DIM] * 4
    assert out["meta"]["usage"]["modalities"] == {"image": 1, "interleaved": 2, "video": 1}
    body = emulator.stats.last_bodies[-1]
    assert [list(p) for p in parts_of(body, 0)] == [["inline_data"]]
    assert parts_of(body, 0)[0]["inline_data"]["mime_type"] == "image/png"
    sent = parts_of(body, 0)[0]["inline_data"]["data"]
    assert b64(sent) == (media_dir / "red_circle.png").read_bytes()
    # text first, then the media, in one Content: no task prefix on media items
    assert parts_of(body, 1)[0] == {"text": "a caption"}
    assert parts_of(body, 1)[1]["inline_data"]["mime_type"] == "image/png"
    assert parts_of(body, 2)[1]["inline_data"]["mime_type"] == "audio/wav"
    assert parts_of(body, 3)[0]["inline_data"]["mime_type"] == "video/mp4"


def test_media_documents_rank_for_a_text_query(emulator: Emulator, media_dir: Path) -> None:
    names = ["red_circle.png", "blue_square.png", "yellow_star.jpg", "piano.wav", "waves.mp4"]
    docs = [Document(content="", meta={"file_path": str(media_dir / n)}) for n in names]
    embedded = doc_embedder(emulator).run(docs)["documents"]
    query = GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM)
    for text, expected in [
        ("a red circle", "red_circle.png"),
        ("ocean waves at a beach", "waves.mp4"),
        ("a piano playing", "piano.wav"),
    ]:
        q = query.run(text)["embedding"]
        best = max(embedded, key=lambda d: dot(q, d.embedding or []))
        assert Path(best.meta["file_path"]).name == expected


def test_mime_type_meta_names_a_file_without_suffix(emulator: Emulator, tmp_path: Path) -> None:
    samples.make_png(tmp_path / "picture", "a green tree", color=(0, 200, 0), shape="circle")
    doc = Document(content="", meta={"file_path": "picture", "mime_type": "image/png"})
    doc_embedder(emulator, root_path=str(tmp_path)).run([doc])
    assert parts_of(emulator.stats.last_bodies[-1])[0]["inline_data"]["mime_type"] == "image/png"


def test_converter_chunk_embeds_as_text_and_opt_in_hints(emulator: Emulator) -> None:
    """PyPDFToDocument + DocumentSplitter give text chunks whose file_path is the PDF."""
    doc = Document(content="chunk text", meta={"file_path": "report.pdf", "page_number": 3})
    assert doc_embedder(emulator).run([doc])["documents"][0].embedding is not None
    assert parts_of(emulator.stats.last_bodies[-1]) == [{"text": "title: none | text: chunk text"}]
    with pytest.raises(MediaReadError, match="embed_file_with_content=True"):
        doc_embedder(emulator, embed_file_with_content=True).run([doc])


def test_embed_media_false_embeds_text_only(emulator: Emulator, media_dir: Path) -> None:
    doc = Document(content="page text", meta={"file_path": str(media_dir / "three_pages.pdf")})
    doc_embedder(emulator, embed_media=False).run([doc])
    assert parts_of(emulator.stats.last_bodies[-1]) == [{"text": "title: none | text: page text"}]
    doc_embedder(emulator, file_path_meta_field=None).run([doc])
    assert parts_of(emulator.stats.last_bodies[-1]) == [{"text": "title: none | text: page text"}]


def test_pdf_page_number_embeds_that_page(emulator: Emulator, media_dir: Path) -> None:
    pytest.importorskip("gemb2.segment.pdf")
    docs = [
        Document(content="", meta={"file_path": "three_pages.pdf", "page_number": p})
        for p in (1, 2, 3)
    ]
    out = doc_embedder(emulator, root_path=str(media_dir)).run(docs)["documents"]
    import io

    from pypdf import PdfReader

    body = emulator.stats.last_bodies[-1]
    for i in range(3):
        data = b64(parts_of(body, i)[0]["inline_data"]["data"])
        reader = PdfReader(io.BytesIO(data))
        assert len(reader.pages) == 1
    q = GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM).run(
        "honeybees make honey"
    )["embedding"]
    best = max(out, key=lambda d: dot(q, d.embedding or []))
    assert best.meta["page_number"] == 2


def test_bad_page_number(emulator: Emulator, media_dir: Path) -> None:
    doc = Document(content="", meta={"file_path": "three_pages.pdf", "page_number": 0})
    with pytest.raises(InputError, match="page_number"):
        doc_embedder(emulator, root_path=str(media_dir)).run([doc])
    assert emulator.stats.requests == 0


@pytest.mark.parametrize("escape", ["../outside.png", "/etc/passwd.png", "sub/../../outside.png"])
def test_root_path_refuses_escapes(emulator: Emulator, tmp_path: Path, escape: str) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    samples.make_png(tmp_path / "outside.png", "secret", color=(1, 2, 3), shape="circle")
    doc = Document(content="", meta={"file_path": escape})
    with pytest.raises(InputError, match="escapes root_path") as info:
        doc_embedder(emulator, root_path=str(root)).run([doc])
    assert isinstance(info.value, ValueError)
    assert emulator.stats.requests == 0


def test_root_path_refuses_symlinks_out(emulator: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    samples.make_png(tmp_path / "outside.png", "secret", color=(1, 2, 3), shape="circle")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    doc = Document(content="", meta={"file_path": "link.png"})
    with pytest.raises(InputError, match="escapes root_path"):
        doc_embedder(emulator, root_path=str(root)).run([doc])


def test_missing_and_corrupt_media_fail_before_any_call(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    ok = Document(content="fine text")
    with pytest.raises(MediaReadError, match="no such file"):
        doc_embedder(emulator, root_path=str(tmp_path)).run(
            [ok, Document(content="", meta={"file_path": "gone.png"})]
        )
    with pytest.raises(MediaReadError) as info:
        doc_embedder(emulator, root_path=str(tmp_path)).run(
            [ok, Document(content="", meta={"file_path": "broken.png"})]
        )
    assert info.value.item == 1
    assert emulator.stats.requests == 0


def test_unsupported_blob_without_text(emulator: Emulator) -> None:
    doc = Document(blob=ByteStream(b"plain words", mime_type="text/plain"))
    with pytest.raises(UnsupportedMediaError):
        doc_embedder(emulator).run([doc])
    # with text, a blob the model cannot take is ignored and the text embedded
    with_text = Document(content="words", blob=ByteStream(b"plain words", mime_type="text/plain"))
    out = doc_embedder(emulator).run([with_text])
    assert out["documents"][0].embedding is not None
    assert parts_of(emulator.stats.last_bodies[-1]) == [{"text": "title: none | text: words"}]


def test_over_the_limit_media_names_the_document(emulator: Emulator, tmp_path: Path) -> None:
    samples.make_pdf(tmp_path / "long.pdf", [f"page {i}" for i in range(8)])
    doc = Document(content="", meta={"file_path": "long.pdf"})
    with pytest.raises(LimitExceededError, match="6") as info:
        doc_embedder(emulator, root_path=str(tmp_path)).run([doc])
    assert doc.id in str(info.value)
    assert emulator.stats.requests == 0


async def test_document_embedder_run_async_matches_run(emulator: Emulator, media_dir: Path) -> None:
    docs = [Document(content="volcanoes erupt lava")] + [
        Document(content="", meta={"file_path": n}) for n in ("red_circle.png", "piano.wav")
    ]
    embedder = doc_embedder(emulator, root_path=str(media_dir), batch_size=2)
    sync = embedder.run(docs)["documents"]
    out = await embedder.run_async(docs)
    assert emulator.stats.requests == 4
    assert out["meta"]["usage"]["requests"] == 2
    for a, b in zip(out["documents"], sync, strict=True):
        assert a.id == b.id
        assert a.embedding == pytest.approx(b.embedding, abs=1e-12)
    await embedder.close_async()


# -- raise_on_failure=False ------------------------------------------------------------------


def test_skip_failures_when_asked(emulator: Emulator, media_dir: Path, caplog) -> None:
    docs = [
        Document(content="good one"),
        Document(content=""),
        Document(content="", meta={"file_path": "gone.png"}),
        Document(content="", meta={"file_path": "red_circle.png"}),
    ]
    caplog.set_level(logging.WARNING, logger="haystack_gemb2")
    out = doc_embedder(emulator, root_path=str(media_dir), raise_on_failure=False).run(docs)
    got = out["documents"]
    assert [d.embedding is not None for d in got] == [True, False, False, True]
    assert [f["id"] for f in out["meta"]["failed"]] == [docs[1].id, docs[2].id]
    assert "no such file" in out["meta"]["failed"][1]["error"]
    assert emulator.stats.requests == 1 and emulator.stats.items == 2
    assert sum("skipping document" in r.getMessage() for r in caplog.records) == 2


def test_service_failure_raises_or_is_reported(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("500",))
    docs = [Document(content="a"), Document(content="b")]
    with pytest.raises(RetryExhaustedError) as info:
        doc_embedder(emulator, max_retries=1, settings={"backoff_initial": 0.01}).run(docs)
    assert info.value.code == 500
    out = doc_embedder(
        emulator, max_retries=0, raise_on_failure=False, settings={"backoff_initial": 0.01}
    ).run(docs)
    assert [d.embedding for d in out["documents"]] == [None, None]
    assert {f["id"] for f in out["meta"]["failed"]} == {d.id for d in docs}


# -- media query embedder --------------------------------------------------------------------


def test_media_query_finds_the_matching_document(emulator: Emulator, media_dir: Path) -> None:
    docs = [
        Document(content="a blue square on a white page"),
        Document(content="", meta={"file_path": "red_circle.png"}),
        Document(content="", meta={"file_path": "waves.mp4"}),
        Document(content="honeybees make honey"),
    ]
    embedded = doc_embedder(emulator, root_path=str(media_dir)).run(docs)["documents"]
    query = GeminiMediaQueryEmbedder(
        api_base_url=emulator.base_url, dimensions=DIM, root_path=str(media_dir)
    )
    png = (media_dir / "blue_square.png").read_bytes()
    sources: list[object] = [
        "blue_square.png",
        media_dir / "blue_square.png",
        ByteStream(png, mime_type="image/png"),
        ImageContent(base64_image=base64.b64encode(png).decode(), mime_type="image/png"),
    ]
    vectors = [query.run(source=s)["embedding"] for s in sources]  # type: ignore[arg-type]
    for v in vectors:
        assert v == pytest.approx(vectors[0], abs=1e-12)
        best = max(embedded, key=lambda d: dot(v, d.embedding or []))
        assert best.content == "a blue square on a white page"  # an image finds text
    emulator.reset_stats()
    out = query.run(source="red_circle.png", text="a photo")
    assert out["meta"]["usage"]["modalities"] == {"interleaved": 1}
    parts = parts_of(emulator.stats.last_bodies[-1])
    assert parts[0] == {"text": "a photo"} and "inline_data" in parts[1]


async def test_media_query_async_and_root_guard(emulator: Emulator, media_dir: Path) -> None:
    query = GeminiMediaQueryEmbedder(
        api_base_url=emulator.base_url, dimensions=DIM, root_path=str(media_dir)
    )
    out = await query.run_async(source="piano.wav")
    assert len(out["embedding"]) == DIM
    with pytest.raises(InputError, match="escapes root_path"):
        await query.run_async(source="../elsewhere.png")
    with pytest.raises(InputError, match="cannot embed"):
        query.run(source=42)  # type: ignore[arg-type]
    assert emulator.stats.requests == 1
    await query.close_async()


# -- warm-up, configuration, serialisation -------------------------------------------------


def test_warm_up_is_idempotent_and_run_warms_up(emulator: Emulator) -> None:
    embedder = GeminiTextEmbedder(api_base_url=emulator.base_url)
    assert embedder._embedder is None
    embedder.warm_up()
    first = embedder._embedder
    embedder.warm_up()
    assert embedder._embedder is first
    assert emulator.stats.requests == 0
    cold = GeminiDocumentEmbedder(api_base_url=emulator.base_url, progress_bar=False)
    assert cold.run([Document(content="x")])["documents"][0].embedding is not None
    cold.close()
    assert cold._embedder is None
    assert cold.run([Document(content="x")])["documents"][0].embedding is not None


async def test_close_async(emulator: Emulator) -> None:
    embedder = GeminiTextEmbedder(api_base_url=emulator.base_url)
    await embedder.run_async("x")
    await embedder.close_async()
    assert embedder._embedder is None


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match="dimensions"):
        GeminiTextEmbedder(dimensions=5000)
    with pytest.raises(ConfigError, match="model"):
        GeminiDocumentEmbedder(model="text-embedding-3-small")
    with pytest.raises(ConfigError):
        GeminiDocumentEmbedder(task="summarise")
    with pytest.raises(ConfigError, match="batch_size"):
        GeminiDocumentEmbedder(batch_size=500)
    with pytest.raises(ConfigError, match="api"):
        GeminiTextEmbedder(api="openai")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="api_key=Secret"):
        GeminiTextEmbedder(settings={"api_key": "x"})
    with pytest.raises(ConfigError, match="Secret"):
        GeminiTextEmbedder(api_key="plain string")  # type: ignore[arg-type]


def test_missing_key_fails_at_warm_up(no_key_env: None) -> None:
    embedder = GeminiTextEmbedder()  # constructing needs no key
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY"):
        embedder.warm_up()
    strict = GeminiTextEmbedder(api_key=Secret.from_env_var("MY_GEMINI_KEY"))
    with pytest.raises(ValueError, match="MY_GEMINI_KEY"):
        strict.warm_up()


def test_vertex_settings_reach_the_core(no_key_env: None) -> None:
    embedder = GeminiDocumentEmbedder(
        api="vertex", vertex_ai_project="proj", vertex_ai_location="us-central1", dimensions=768
    )
    settings = embedder._settings(None)
    assert settings.vertexai and settings.project == "proj"
    assert settings.location == "us-central1"
    with pytest.raises(ConfigError, match="project and location"):
        GeminiTextEmbedder(api="vertex").warm_up()


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (GeminiTextEmbedder, {"prefix": "p", "suffix": "s", "task": "question_answering"}),
        (GeminiMediaQueryEmbedder, {"root_path": "/data", "dimensions": 1536}),
        (
            GeminiDocumentEmbedder,
            {
                "meta_fields_to_embed": ["title"],
                "embedding_separator": " | ",
                "batch_size": 20,
                "progress_bar": False,
                "title_meta_field": "title",
                "embed_media": False,
                "file_path_meta_field": "path",
                "root_path": "/data",
                "raise_on_failure": False,
                "api": "vertex",
                "vertex_ai_project": "p",
                "vertex_ai_location": "europe-west4",
                "timeout": 12.5,
                "max_retries": 2,
                "settings": {"max_concurrency": 2, "requests_per_minute": 100.0},
            },
        ),
    ],
)
def test_to_dict_from_dict_round_trip(cls: type, kwargs: dict, monkeypatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    component = cls(**kwargs)
    data = component.to_dict()
    assert data["type"] == f"haystack_integrations.components.embedders.gemb2.{cls.__name__}"
    assert data["init_parameters"]["api_key"] == {
        "type": "env_var",
        "env_vars": ["GOOGLE_API_KEY", "GEMINI_API_KEY"],
        "strict": False,
    }
    for key, value in kwargs.items():
        assert data["init_parameters"][key] == value
    assert SECRET not in repr(data)
    again = cls.from_dict(data)
    assert isinstance(again, cls)
    assert again.to_dict() == data
    assert again.api_key.resolve_value() == SECRET  # read from the env var, not the dict


def test_token_secrets_refuse_to_serialise() -> None:
    embedder = GeminiTextEmbedder(api_key=Secret.from_token(SECRET))
    with pytest.raises(ValueError, match="token"):
        embedder.to_dict()
    assert SECRET not in repr(embedder)


def test_direct_and_integration_imports_are_one_class() -> None:
    assert DirectImport is GeminiDocumentEmbedder


def test_secret_never_leaks(emulator: Emulator, media_dir: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    text = GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM)
    docs = GeminiDocumentEmbedder(
        api_base_url=emulator.base_url, dimensions=DIM, root_path=str(media_dir)
    )
    pipe = Pipeline()
    pipe.add_component("docs", docs)
    pipe.add_component("text", text)
    pipe.run({"docs": {"documents": [Document(content="x")]}, "text": {"text": "y"}})
    assert emulator.stats.requests == 2  # the key was used...
    seen = [repr(text), repr(docs), repr(text.embedder), repr(text.embedder.settings), str(pipe)]
    seen += [pipe.dumps(), str(text.to_dict()), str(docs.to_dict()), caplog.text]
    try:  # ...and errors do not carry it either
        docs.run([Document(content="", meta={"file_path": "../x.png"})])
    except InputError as exc:
        seen.append(str(exc) + repr(exc))
    emulator.configure(fault_rate=1.0, faults=("500",))
    try:
        GeminiTextEmbedder(api_base_url=emulator.base_url, max_retries=0).run("z")
    except RetryExhaustedError as exc:
        seen.append(str(exc) + repr(exc) + repr(exc.__cause__))
    assert len(seen) == 11
    for s in seen:
        assert SECRET not in s
