"""``gemb2 doctor`` against emulators serving different profiles: it reports each one.

Each emulator is a real HTTP server serving a profile's facts; doctor talks to it through
the real google-genai SDK exactly as it would talk to Google, so what it reports is what
it measured over the wire, never read from the profile.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gemb2 import Embedder, EmbedSettings, LimitExceededError
from gemb2.cli.main import main
from gemb2.cli.probes import SEARCHES, find_limit, probe_points
from gemb2.model.profile import load_profile
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator, EmulatorConfig

# Three services that disagree on the disputed facts (written as users write profiles: only
# what differs from the defaults)
PROFILES: dict[str, dict[str, Any]] = {
    "ga-like": {
        "name": "ga-like",
        "limits": {"max_audio_seconds": 180, "max_images": 5},
        "normalized_below_3072": True,
        "task_type_changes_vector": False,
    },
    "older": {
        "name": "older",
        "limits": {"max_pdf_pages": 8, "max_video_seconds": 128, "max_audio_seconds": 100},
        "task_type_changes_vector": True,
        "prefix_changes_vector": False,
        "max_requests_per_call": 50,
    },
    "default": {},
}


def write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(PROFILES[name]))
    return path


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def doctor_json(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> dict[str, Any]:
    code, out, err = doctor(capsys, "--base-url", url, "--yes", "--json", *extra)
    assert code == 0, err
    assert "estimated cost at most $" in err  # shown before any call
    return dict(json.loads(out))


def expected(path: Path) -> dict[str, Any]:
    """What doctor must measure: the facts of the profile the emulator serves."""
    facts = load_profile(path).facts()
    facts.pop("batch_accepts_media")  # only measured with --probe-batch
    return facts


MEASURED = (
    "normalized_below_3072",
    "task_type_changes_vector",
    "prefix_changes_vector",
    "max_requests_per_call",
    "limits",
)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_doctor_reports_the_profile_each_emulator_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = write(tmp_path, name)
    with Emulator(port=0, profile=path) as emu:
        report = doctor_json(capsys, emu.base_url, "--probe-limits")
        assert emu.stats.requests == report["requests"]
    assert {k: report[k] for k in MEASURED} == expected(path)
    assert report["access"] is True and report["contents_in_vectors_out"] is True
    assert report["unknown_model"] == {"code": 404, "status": "NOT_FOUND"}
    assert report["too_many_requests"] == {"code": 400, "status": "INVALID_ARGUMENT"}
    assert report["media_accepted"] == {"image": True, "pdf": True, "audio": True, "video": True}
    assert report["limits_probed"] is True and report["limits_at_least"] == []
    assert report["defaults"]["limits"] == {
        "max_images": 6,
        "max_pdf_pages": 6,
        "max_audio_seconds": 80.0,
        "max_video_seconds": 120.0,
    }
    assert isinstance(report["estimated_cost_usd"], float)
    assert 0 < report["spent_usd"] <= report["estimated_cost_usd"]


def test_what_doctor_writes_an_emulator_serves_and_doctor_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "ga-like")
    measured = tmp_path / "measured.json"
    with Emulator(port=0, profile=source) as emu:
        first = doctor_json(
            capsys,
            emu.base_url,
            "--probe-limits",
            "--probe-batch",
            "--write-profile",
            str(measured),
        )
    assert first["profile"] == str(measured)
    written = load_profile(measured)
    assert written.facts() == load_profile(source).facts()
    assert written.measured is not None and "limits.max_audio_seconds" in written.measured["facts"]
    assert written.errors == load_profile(source).errors  # the emulator's texts, templated back
    with Emulator(port=0, profile=measured) as emu:
        second = doctor_json(capsys, emu.base_url, "--probe-limits", "--probe-batch")
    for key in (*MEASURED, "batch_accepts_media"):
        assert second[key] == first[key], key
    # the package loads the same file's limits: 100 s of audio is within them
    audio = samples.make_wav(tmp_path / "long.wav", 100, sample_rate=8000)
    with Emulator(port=0, profile=measured) as emu:
        strict = Embedder(base_url=emu.base_url, dimensions=128)
        with pytest.raises(LimitExceededError, match=r"audio is 100\.0 s long.*80 s per audio"):
            strict.embed([audio])
        assert emu.stats.requests == 0
        loose = Embedder(
            EmbedSettings(base_url=emu.base_url, dimensions=128, limits=written.limits)
        )
        assert len(loose.embed([audio])[0]) == 128


def test_the_table_shows_measured_beside_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Emulator(port=0, profile=write(tmp_path, "older")) as emu:
        code, out, _ = doctor(capsys, "--base-url", emu.base_url, "--yes")
    assert code == 0
    lines = {re.split(r"\s{2,}", ln.strip())[0]: ln for ln in out.splitlines()}
    assert re.search(
        r"taskType changes the vector\s+yes\s+no\s+<- differs", lines["taskType changes the vector"]
    )
    assert re.search(
        r"prefix changes the vector\s+no\s+yes\s+<- differs", lines["prefix changes the vector"]
    )
    assert re.search(r"requests per call\s+50\s+100\s+<- differs", lines["requests per call"])
    assert re.search(
        r"normalised below 3072\s+no \(\|v\| = 0\.\d+ at 768\)\s+no$",
        lines["normalised below 3072"],
    )
    assert "media limits: not probed (pass --probe-limits)" in out


def test_without_a_terminal_or_yes_it_refuses_before_any_call(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = doctor(capsys, "--base-url", emulator.base_url, "--probe-limits")
    assert code == 2 and out == ""
    assert re.search(r"estimated cost at most \$\d+\.\d{4}", err)
    assert "gemb2 doctor: error: not confirmed: pass --yes to accept this cost" in err
    assert emulator.stats.requests == 0


def test_a_refused_key_is_one_line_with_the_key_redacted(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "AIza" + "Q" * 35
    monkeypatch.setenv("GOOGLE_API_KEY", key)
    emulator.configure(reject_api_key=True)  # echoes the key, as Google's 403 does
    code, out, err = doctor(capsys, "--base-url", emulator.base_url, "--yes", "--json")
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("gemb2 doctor: error: ")
    assert "refused the credentials (403 PERMISSION_DENIED)" in last
    assert key not in err and "<redacted>" in last
    assert "Traceback" not in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, out, err = doctor(capsys, "--base-url", url, "--yes")
    assert code == 2 and out == ""
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("gemb2 doctor: error")]
    assert len(lines) == 1 and lines[0].startswith(f"gemb2 doctor: error: cannot reach {url}: ")
    assert "Traceback" not in err


def test_no_credentials_and_no_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = doctor(capsys, "--yes")
    assert code == 2 and out == ""
    assert err.startswith(
        "gemb2 doctor: error: no credentials: set GOOGLE_API_KEY or GEMINI_API_KEY"
    )


def test_a_text_only_model_is_checked_without_media(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    report = doctor_json(
        capsys, emulator.base_url, "--model", "gemini-embedding-001", "--probe-limits"
    )
    assert report["model"] == "gemini-embedding-001"
    assert report["media_accepted"] == {}
    assert report["limits"] == dict.fromkeys(
        ("max_images", "max_pdf_pages", "max_audio_seconds", "max_video_seconds")
    )
    assert report["task_type_changes_vector"] is True  # the older model's lever
    assert emulator.stats.requests == report["requests"]


# --- the search ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_the_search_finds_every_limit_within_its_tolerance(name: str) -> None:
    s = SEARCHES[name]
    for truth in range(s.floor, s.ceiling + 1):
        found, capped = find_limit(lambda x, t=truth: x <= t, s)
        assert truth - s.tol < found <= truth or (capped and found == s.ceiling), (truth, found)
    # the default right costs two probes: it, accepted, and just over it, refused
    assert probe_points(s, s.guess) == [(s.guess, True), (s.guess + s.tol, False)]


# --- the profile on the command line -------------------------------------------------------


def test_gemb2_emulator_serves_a_profile_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "older")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemb2.testing.emulator", "--port", "0", "--profile", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "serving profile 'older'" in banner
        url = re.search(r"listening on (http://\S+)", banner)
        assert url, banner
        report = doctor_json(capsys, url.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert report["max_requests_per_call"] == 50
    assert report["task_type_changes_vector"] is True and report["prefix_changes_vector"] is False


def test_a_bad_profile_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"limits": {"max_images": -1}, "colour": "red"}))
    code = main(["emulator", "--port", "0", "--profile", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        f"gemb2 emulator: profile {bad}: limits.max_images: Input should be greater than or "
        "equal to 0; colour: Extra inputs are not permitted"
    )


def test_limits_file_on_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ga-like")
    audio = samples.make_wav(tmp_path / "talk.wav", 100, sample_rate=8000)
    with Emulator(port=0, profile=path, config=EmulatorConfig()) as emu:
        code = main(["embed", "--base-url", emu.base_url, "--dimensions", "128", str(audio)])
        err = capsys.readouterr().err
        assert code == 2 and "audio is 100.0 s long" in err and "80 s per audio" in err
        assert emu.stats.requests == 0
        code = main(
            [
                "embed",
                "--base-url",
                emu.base_url,
                "--dimensions",
                "128",
                "--limits",
                str(path),
                str(audio),
            ]
        )
        out = capsys.readouterr().out
        assert code == 0 and json.loads(out)["dimensions"] == 128
        code = main(
            [
                "embed",
                "--base-url",
                emu.base_url,
                "--model",
                "gemini-embedding-001",
                "--limits",
                str(path),
                "x",
            ]
        )
        err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "gemb2 embed: error: profile 'ga-like' describes gemini-embedding-2, not "
        "gemini-embedding-001: its limits do not apply"
    )
