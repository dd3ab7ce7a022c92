"""The emulator's Batch Mode and Files API, driven by the unmodified google-genai SDK."""

from __future__ import annotations

import io
import json
import time
import warnings

import pytest
from batch_helpers import DIMS
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemb2.testing.emulator import Emulator


@pytest.fixture
def client(emu: Emulator) -> genai.Client:
    warnings.simplefilter("ignore")  # create_embeddings is marked experimental
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=emu.base_url))


def _contents(words: list[str]) -> list[types.Content]:
    return [types.Content(role="user", parts=[types.Part(text=w)]) for w in words]


def _inline(client: genai.Client, words: list[str]) -> types.BatchJob:
    return client.batches.create_embeddings(
        model="gemini-embedding-2",
        src=types.EmbeddingsBatchJobSource(
            inlined_requests=types.EmbedContentBatch(
                contents=_contents(words),
                config=types.EmbedContentConfig(output_dimensionality=DIMS),
            )
        ),
        config={"display_name": "emulator-test"},
    )


def test_inline_job_moves_through_states_and_matches_online(
    emu: Emulator, client: genai.Client
) -> None:
    emu.configure(batch_hold="PENDING")
    job = client.batches.create_embeddings(
        model="gemini-embedding-2",
        src=types.EmbeddingsBatchJobSource(
            inlined_requests=types.EmbedContentBatch(
                contents=_contents(["a red circle", "ocean waves"]),
                config=types.EmbedContentConfig(output_dimensionality=DIMS),
            )
        ),
        config={"display_name": "emulator-test"},
    )
    assert job.name is not None and job.name.startswith("batches/")
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "emulator-test"
    body = emu.batch.stats.last_create_body
    assert body is not None
    requests = body["batch"]["inputConfig"]["requests"]["requests"]
    assert [r["request"]["content"]["parts"][0]["text"] for r in requests] == [
        "a red circle",
        "ocean waves",
    ]
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_PENDING
    emu.configure(batch_hold="RUNNING")
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    emu.configure(batch_hold=None)
    time.sleep(0.06)  # past batch_delay
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done
    answers = done.dest.inlined_embed_content_responses  # type: ignore[union-attr]
    assert answers is not None and len(answers) == 2
    online = client.models.embed_content(
        model="gemini-embedding-2",
        contents=_contents(["a red circle", "ocean waves"]),
        config=types.EmbedContentConfig(output_dimensionality=DIMS),
    )
    assert online.embeddings is not None
    for answer, want in zip(answers, online.embeddings, strict=True):
        assert answer.response is not None and answer.response.embedding is not None
        assert answer.response.embedding.values == want.values
        assert answer.response.token_count and answer.response.token_count > 0
    listed = [j.name for j in client.batches.list()]
    assert job.name in listed


def test_delay_decides_when_a_job_finishes(emu: Emulator, client: genai.Client) -> None:
    emu.configure(batch_delay=0.6)
    job = _inline(client, ["a cat"])
    assert job.name is not None
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_PENDING
    time.sleep(0.65)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED


def test_file_job_through_the_files_api(emu: Emulator, client: genai.Client) -> None:
    lines = [
        {
            "key": f"k{i}",
            "request": {"content": {"parts": [{"text": t}]}, "outputDimensionality": DIMS},
        }
        for i, t in enumerate(["honeybees make honey", "glaciers carve valleys", "lava"])
    ]
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    uploaded = client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "jsonl", "display_name": "input"}
    )
    assert uploaded.name is not None and uploaded.size_bytes == len(data)
    assert emu.batch.files[uploaded.name].data == data
    with pytest.raises(genai_errors.ClientError) as err:  # uploads cannot be downloaded
        client.files.download(file=uploaded.name)
    assert err.value.code == 403
    emu.configure(batch_fail_keys=("k1",))
    job = client.batches.create_embeddings(
        model="gemini-embedding-2", src={"file_name": uploaded.name}
    )
    assert job.name is not None
    time.sleep(0.06)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.file_name
    out = [json.loads(x) for x in client.files.download(file=done.dest.file_name).splitlines()]
    assert [o["key"] for o in out] == ["k0", "k1", "k2"]
    assert "error" in out[1] and out[1]["error"]["code"] == 13
    assert len(out[0]["response"]["embedding"]["values"]) == DIMS
    online = client.models.embed_content(
        model="gemini-embedding-2",
        contents=_contents(["glaciers carve valleys", "lava"]),
        config=types.EmbedContentConfig(output_dimensionality=DIMS),
    )
    assert online.embeddings is not None
    assert out[2]["response"]["embedding"]["values"] == pytest.approx(
        online.embeddings[1].values, abs=1e-7
    )
    assert emu.batch.stats.uploads == 1 and emu.batch.stats.downloads == 1


def test_per_item_failures_and_media_refusal(emu: Emulator, client: genai.Client) -> None:
    emu.configure(batch_fail_every=3, batch_accepts_media=False)
    png = _png()
    image = types.Content(
        parts=[types.Part(inline_data=types.Blob(mime_type="image/png", data=png))]
    )
    contents = [*_contents(["one", "two", "three", "four"]), image]
    job = client.batches.create_embeddings(
        model="gemini-embedding-2",
        src={
            "inlined_requests": types.EmbedContentBatch(
                contents=contents, config=types.EmbedContentConfig(output_dimensionality=DIMS)
            )
        },
    )
    assert job.name is not None
    time.sleep(0.06)
    answers = client.batches.get(name=job.name).dest.inlined_embed_content_responses  # type: ignore[union-attr]
    assert answers is not None
    failed = [i for i, a in enumerate(answers) if a.error is not None]
    assert failed == [2, 4]
    assert answers[2].error is not None and answers[2].error.code == 13
    media_error = answers[4].error
    assert media_error is not None and media_error.code == 3
    assert "does not accept media" in (media_error.message or "")


def test_a_failed_job_has_no_output(emu: Emulator, client: genai.Client) -> None:
    emu.configure(batch_final_state="EXPIRED")
    job = _inline(client, ["a cat"])
    assert job.name is not None
    time.sleep(0.06)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_EXPIRED and done.done
    assert done.dest is None


def test_bad_requests_are_refused_like_the_service(emu: Emulator, client: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as err:
        client.batches.create_embeddings(
            model="gemini-embedding-2", src={"file_name": "files/nope"}
        )
    assert err.value.code == 404
    with pytest.raises(genai_errors.ClientError) as err:
        client.batches.get(name="batches/doesnotexist")
    assert err.value.code == 404
    with pytest.raises(genai_errors.ClientError) as err:
        _inline_model(client, "no-such-model")
    assert err.value.code == 404


def _inline_model(client: genai.Client, model: str) -> types.BatchJob:
    return client.batches.create_embeddings(
        model=model,
        src={"inlined_requests": types.EmbedContentBatch(contents=_contents(["x"]))},
    )


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()
