"""The service behaviours gemb2 relies on, asserted the same way on the emulator and on Google.

Each test talks to ``target`` (the Developer API) or ``vertex_target`` through the real
google-genai client; which service that is, is decided by the fixtures alone. Facts the
sources disagree on (normalisation below 3072, the effect of ``taskType``, Batch Mode
taking media) are recorded, not assumed: the test checks what can be checked of them and
warns where the profile under test says otherwise.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from gemb2.engine.retry import parse_retry_delay

from .conftest import PROFILE, Media, Target, usd

LIM = PROFILE.limits
PER_CALL = PROFILE.max_requests_per_call
TEXT = "Honeybees collect nectar from flowers and turn it into honey."


def text(t: str) -> types.Content:
    return types.Content(parts=[types.Part(text=t)])


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def refused(exc: pytest.ExceptionInfo[genai_errors.APIError], code: int, status: str) -> str:
    """Google's error body: ``{"error": {"code", "message", "status"}}``; its message."""
    err = exc.value
    assert (err.code, err.status) == (code, status)
    body = err.details
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert body["error"]["code"] == code and body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(err.message)


# --- counts and errors -------------------------------------------------------------------


@pytest.mark.cost(usd(text_tokens=3 * 20))
def test_n_contents_give_n_vectors(target: Target) -> None:
    vectors = target.embed([text(f"{TEXT} ({i})") for i in range(3)], output_dimensionality=768)
    assert [len(v) for v in vectors] == [768, 768, 768]
    assert len({tuple(v) for v in vectors}) == 3


@pytest.mark.cost(usd(text_tokens=3 * 5))
def test_a_list_of_strings_is_one_content_and_one_vector(target: Target) -> None:
    """The SDK's trap: strings become the parts of ONE content, so gemb2 builds Contents."""
    response = target.client.models.embed_content(model=target.model, contents=["a", "b", "c"])
    assert len(response.embeddings or []) == 1


@pytest.mark.cost(usd(text_tokens=(2 * PER_CALL + 1) * 8))
def test_the_request_limit_per_call_and_googles_400(target: Target) -> None:
    at_limit = [text(f"item {i}") for i in range(PER_CALL)]
    assert len(target.embed(at_limit, output_dimensionality=128)) == PER_CALL
    with pytest.raises(genai_errors.ClientError) as exc:
        target.embed([*at_limit, text("one more")], output_dimensionality=128)
    message = refused(exc, 400, "INVALID_ARGUMENT")
    assert f"at most {PER_CALL} requests can be in one batch" in message


@pytest.mark.cost(usd(text_tokens=10))
def test_an_unknown_model_is_404(target: Target) -> None:
    with pytest.raises(genai_errors.ClientError) as exc:
        target.embed([text(TEXT)], model="gemini-embedding-no-such-model")
    message = refused(exc, 404, "NOT_FOUND")
    assert "gemini-embedding-no-such-model" in message


@pytest.mark.cost(usd(text_tokens=10))
def test_a_429_carries_retry_info_gemb2_reads(target: Target) -> None:
    undo = target.rate_limited()
    try:
        with pytest.raises(genai_errors.ClientError) as exc:
            target.embed([text(TEXT)])
    finally:
        undo()
    message = refused(exc, 429, "RESOURCE_EXHAUSTED")
    details = exc.value.details["error"].get("details") or []
    info = [d for d in details if d.get("@type") == "type.googleapis.com/google.rpc.RetryInfo"]
    assert len(info) == 1 and re.fullmatch(r"\d+(\.\d+)?s", info[0]["retryDelay"])
    delay = parse_retry_delay(exc.value.details, message)
    assert delay == float(info[0]["retryDelay"][:-1]) and delay > 0


# --- vectors -----------------------------------------------------------------------------


@pytest.mark.cost(usd(text_tokens=2 * 20))
def test_short_outputs_are_the_head_of_the_full_vector(target: Target) -> None:
    """Matryoshka (what truncation relies on) is asserted; normalisation is recorded."""
    (full,) = target.embed([text(TEXT)], output_dimensionality=3072)
    (short,) = target.embed([text(TEXT)], output_dimensionality=768)
    assert len(full) == 3072 and len(short) == 768
    assert math.isclose(norm(full), 1.0, abs_tol=1e-3)
    assert cosine(short, full[:768]) > 0.999
    normalized = math.isclose(norm(short), 1.0, abs_tol=1e-3)
    if not normalized:  # then it is the head as it stands, not re-scaled
        assert math.isclose(norm(short), norm(full[:768]), rel_tol=1e-3)
    target.record("normalized_below_3072", normalized, PROFILE.normalized_below_3072)


@pytest.mark.cost(usd(text_tokens=3 * 25))
def test_the_prefix_changes_the_vector(target: Target) -> None:
    first, again, prefixed = (
        target.embed([text(t)], output_dimensionality=768)[0]
        for t in (TEXT, TEXT, f"task: search result | query: {TEXT}")
    )
    noise = 1 - cosine(first, again)
    changed = 1 - cosine(first, prefixed) > max(1e-6, 10 * noise)
    target.record("prefix_changes_vector", changed, PROFILE.prefix_changes_vector)
    assert changed, "gemb2 conditions gemini-embedding-2 by the prefix: it must matter"


@pytest.mark.cost(usd(text_tokens=3 * 20))
def test_whether_task_type_changes_the_vector_is_recorded(target: Target) -> None:
    plain, query, classify = (
        target.embed([text(TEXT)], output_dimensionality=768, **kw)[0]
        for kw in ({}, {"task_type": "RETRIEVAL_QUERY"}, {"task_type": "CLASSIFICATION"})
    )
    assert len(query) == len(classify) == 768  # accepted, whatever it does
    noise = 1 - cosine(plain, target.embed([text(TEXT)], output_dimensionality=768)[0])
    changed = 1 - cosine(query, classify) > max(1e-6, 10 * noise)
    target.record("task_type_changes_vector", changed, PROFILE.task_type_changes_vector)


# --- media at each limit's boundary ------------------------------------------------------


def _one_vector(target: Target, parts: list[types.Part]) -> None:
    vectors = target.embed([types.Content(parts=parts)], output_dimensionality=128)
    assert [len(v) for v in vectors] == [128]


def _refused(target: Target, parts: list[types.Part]) -> str:
    with pytest.raises(genai_errors.ClientError) as exc:
        target.embed([types.Content(parts=parts)], output_dimensionality=128)
    return refused(exc, 400, "INVALID_ARGUMENT")


@pytest.mark.cost(usd(images=2 * LIM.max_images + 1))
def test_images_per_item(target: Target, media: Media) -> None:
    images = media.images(LIM.max_images + 1)
    _one_vector(target, images[: LIM.max_images])
    _refused(target, images)


@pytest.mark.cost(usd(pdf_pages=2 * LIM.max_pdf_pages + 1))
def test_pdf_pages(target: Target, media: Media) -> None:
    _one_vector(target, [media.pdf(LIM.max_pdf_pages)])
    _refused(target, [media.pdf(LIM.max_pdf_pages + 1)])


@pytest.mark.cost(usd(audio_seconds=2 * LIM.max_audio_seconds + 1))
def test_audio_seconds(target: Target, media: Media) -> None:
    _one_vector(target, [media.audio(LIM.max_audio_seconds - 1)])
    _refused(target, [media.audio(LIM.max_audio_seconds + 2)])


@pytest.mark.cost(usd(video_seconds=2 * LIM.max_video_seconds + 1))
def test_video_seconds(target: Target, media: Media) -> None:
    _one_vector(target, [media.video(LIM.max_video_seconds - 1)])
    _refused(target, [media.video(LIM.max_video_seconds + 2)])


# --- Vertex AI ---------------------------------------------------------------------------


LONG = "honeybees make honey " * 4000  # ~16,000 tokens: over the 8,192 limit


@pytest.mark.cost(usd(text_tokens=2 * 8192 + 20))
def test_vertex_embed_content_config_options(vertex_target: Target) -> None:
    (short,) = vertex_target.embed([text(TEXT)], output_dimensionality=256)
    assert len(short) == 256
    (cut,) = vertex_target.embed([text(LONG)], output_dimensionality=256, auto_truncate=True)
    assert len(cut) == 256
    with pytest.raises(genai_errors.ClientError) as exc:
        vertex_target.embed([text(LONG)], output_dimensionality=256, auto_truncate=False)
    refused(exc, 400, "INVALID_ARGUMENT")


# --- Batch Mode --------------------------------------------------------------------------

DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def _state(job: Any) -> str:
    return str(getattr(job.state, "value", job.state))


@pytest.mark.cost(usd(text_tokens=2 * 20, images=1, batch=True) + usd(text_tokens=20))
def test_batch_mode_round_trip_with_text_and_media(target: Target, media: Media) -> None:
    client = target.client
    src = types.EmbeddingsBatchJobSource(
        inlined_requests=types.EmbedContentBatch(
            contents=[text(TEXT), types.Content(parts=media.images(1))],
            config=types.EmbedContentConfig(output_dimensionality=768),
        )
    )
    with warnings.catch_warnings():  # the SDK marks create_embeddings experimental
        warnings.simplefilter("ignore")
        job = client.batches.create_embeddings(model=target.model, src=src)
    try:
        deadline = time.monotonic() + target.batch_timeout
        while _state(job) not in DONE and time.monotonic() < deadline:
            time.sleep(1.0)
            job = client.batches.get(name=job.name)
        if _state(job) not in DONE:
            pytest.skip(
                f"batch job {job.name} still {_state(job)} after {target.batch_timeout:g} s"
            )
        assert _state(job) == "JOB_STATE_SUCCEEDED", job.error
        answers = job.dest.inlined_embed_content_responses if job.dest else None
        assert answers is not None and len(answers) == 2
        text_answer, media_answer = answers
        assert text_answer.error is None and text_answer.response is not None
        batch_vector = list(text_answer.response.embedding.values or [])
        assert len(batch_vector) == 768
        (online,) = target.embed([text(TEXT)], output_dimensionality=768)
        assert cosine(batch_vector, online) > 0.999  # the same space as online calls
        took_media = media_answer.error is None and media_answer.response is not None
        if took_media:
            assert len(media_answer.response.embedding.values or []) == 768
        target.record("batch_accepts_media", took_media, PROFILE.batch_accepts_media)
    finally:
        if _state(job) not in DONE:
            client.batches.cancel(name=job.name)
