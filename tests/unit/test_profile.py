"""Profiles: one file of a model's service facts, loaded by the package and the emulator."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemb2 import ConfigError, Embedder, EmbedSettings, Limits
from gemb2.model.catalog import get_model
from gemb2.model.profile import BUNDLED, DEFAULT, Profile, load_limits, load_profile
from gemb2.testing import FakeTransport
from gemb2.testing.emulator import Emulator, EmulatorConfig


def test_the_default_profile_is_todays_behaviour() -> None:
    assert load_profile() is DEFAULT and load_profile("default") is DEFAULT
    assert DEFAULT.limits == get_model("gemini-embedding-2").limits == Limits()
    assert DEFAULT.facts() == {
        "normalized_below_3072": False,
        "task_type_changes_vector": False,
        "prefix_changes_vector": True,
        "max_requests_per_call": 100,
        "batch_accepts_media": True,
        "limits": {
            "max_images": 6,
            "max_pdf_pages": 6,
            "max_audio_seconds": 80.0,
            "max_video_seconds": 120.0,
        },
    }
    ga = load_profile("reported-ga")
    assert ga is BUNDLED["reported-ga"]
    assert (ga.limits.max_audio_seconds, ga.normalized_below_3072) == (180.0, True)


def test_a_partial_file_takes_the_rest_from_its_models_catalog(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"model": "gemini-embedding-001", "limits": {"max_tokens": 1000}}))
    p = load_profile(path)
    assert p.model == "gemini-embedding-001"
    assert p.limits == get_model("gemini-embedding-001").limits.model_copy(
        update={"max_tokens": 1000}
    )
    assert load_profile(p.save(tmp_path / "again.json")) == p  # every field written back


def test_fewer_requests_per_call_make_smaller_batches() -> None:
    assert Profile(max_requests_per_call=40).limits.max_batch == 40
    assert Profile(max_requests_per_call=400).limits.max_batch == 100
    assert Profile(max_requests_per_call=40, limits={"max_batch": 10}).limits.max_batch == 10


def test_toml_reads_like_json(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "t"\nnormalized_below_3072 = true\n[limits]\nmax_images = 4\n')
    p = load_profile(path)
    assert (p.name, p.normalized_below_3072, p.limits.max_images) == ("t", True, 4)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            '{"errors": {"too_many_requests": "at most {count}"}}',
            "errors.too_many_requests: Value error, unknown placeholder ['count']; allowed: {got}, {max}",
        ),
        (
            '{"limits": {"max_audio_seconds": 0}}',
            "limits.max_audio_seconds: Input should be greater than 0",
        ),
        (
            '{"model": "gemini-embedding-9"}',
            "profile: Value error, unknown model 'gemini-embedding-9'; known models: "
            "gemini-embedding-001, gemini-embedding-2",
        ),
        ('{"format": 2}', "format: Value error, format 2 is not known to this gemb2 (it reads 1)"),
        ("[1, 2]", "cannot read it: expected a JSON object"),
        ("{not json", "cannot read it: Expecting property name enclosed in double quotes"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    assert str(exc.value).startswith(f"profile {path}: {problem}")
    assert "\n" not in str(exc.value)


def test_neither_a_file_nor_a_name() -> None:
    with pytest.raises(
        ConfigError,
        match=r"'nope\.json' is neither a file nor a bundled profile \(default, reported-ga\)",
    ):
        load_profile("nope.json")


def test_limits_of_one_model_do_not_apply_to_another() -> None:
    assert load_limits("reported-ga", "gemini-embedding-2").max_audio_seconds == 180
    with pytest.raises(ConfigError, match="describes gemini-embedding-2, not gemini-embedding-001"):
        load_limits("reported-ga", "gemini-embedding-001")


def test_the_emulator_answers_with_the_profiles_texts_and_limits() -> None:
    profile = Profile(
        name="texts",
        max_requests_per_call=2,
        errors={
            "too_many_requests": "no more than {max} at once, not {got}",
            "model_not_found": "there is no {model} ({version}, {method})",
        },
    )
    with Emulator(port=0, profile=profile) as emu:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url))
        contents = [types.Content(parts=[types.Part(text=t)]) for t in "abc"]
        with pytest.raises(genai_errors.ClientError) as exc:
            client.models.embed_content(model="gemini-embedding-2", contents=contents)
        assert (exc.value.code, exc.value.message) == (400, "no more than 2 at once, not 3")
        with pytest.raises(genai_errors.ClientError) as exc:
            client.models.embed_content(model="gemini-embedding-7", contents=contents[:1])
        assert exc.value.code == 404  # the SDK's API version: v1 (3.x) or v1beta (2.x)
        assert re.fullmatch(
            r"there is no gemini-embedding-7 \(v1(beta)?, batchEmbedContents\)", exc.value.message
        )
        # an explicit knob wins over the profile's fact
    with Emulator(port=0, profile=profile, config=EmulatorConfig(max_batch=3)) as emu:
        assert emu.config.max_batch == 3 and emu.profile.max_requests_per_call == 2


@pytest.mark.parametrize(("profile", "norm_below_1"), [(None, True), ("reported-ga", False)])
def test_the_fake_transport_serves_a_profiles_normalisation(
    profile: str | None, norm_below_1: bool
) -> None:
    embedder = Embedder(
        EmbedSettings(dimensions=768, normalize=False), transport=FakeTransport(profile=profile)
    )
    (vector,) = embedder.embed(["bees make honey"])
    norm = math.sqrt(sum(x * x for x in vector))
    assert (norm < 0.99) is norm_below_1 and (
        math.isclose(norm, 1.0, abs_tol=1e-5)
    ) is not norm_below_1
