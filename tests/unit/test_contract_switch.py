"""The contract suite's switch to Google (``GEMB2_LIVE=1``), exercised offline.

The live path is the same code as the offline one; only the target fixture differs. Here
it runs in a child pytest with no credentials (every test skips), over the cost cap (it
refuses before any call), against an unreachable endpoint (skips), and with
``GEMB2_LIVE_BASE_URL`` pointing at an emulator serving another profile, where the live
path runs every test it can for real against that profile's facts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from gemb2.testing.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT")
FAKE_KEY = "contract-test-key-not-a-real-one"


def contract(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("GEMB2_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::pytest.PytestConfigWarning",
            "tests/contract",
            *args,
        ],
        cwd=ROOT,
        # the suite needs no plugin: not loading the installed ones halves the start-up
        env={**base, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def counts(out: str) -> dict[str, int]:
    last = out.strip().splitlines()[-1]
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|failed|error)", last)}


def test_live_without_credentials_skips_every_test() -> None:
    run = contract(GEMB2_LIVE="1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(
        r"contract suite: 14 tests against Google \(GEMB2_LIVE=1\).*estimated cost \$\d+\.\d{4}",
        run.stdout,
    )
    assert counts(run.stdout) == {"skipped": 14}
    assert "GEMB2_LIVE=1 but neither GOOGLE_API_KEY nor GEMINI_API_KEY is set" in run.stdout
    assert "GEMB2_LIVE=1 but GOOGLE_CLOUD_PROJECT is not set (Vertex AI)" in run.stdout


def test_live_over_the_cap_refuses_before_any_call(emulator: Emulator) -> None:
    run = contract(
        GEMB2_LIVE="1",
        GOOGLE_API_KEY=FAKE_KEY,
        GEMB2_LIVE_BASE_URL=emulator.base_url,
        GEMB2_LIVE_MAX_USD="0.01",
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert re.search(
        r"refusing the live contract run: estimated \$\d+\.\d{4} is over the cap of \$0\.01",
        run.stdout,
    )
    assert emulator.stats.requests == 0


def test_live_with_an_unreachable_endpoint_skips(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = contract(
        "-k",
        "n_contents or unknown_model",
        GEMB2_LIVE="1",
        GOOGLE_API_KEY=FAKE_KEY,
        GEMB2_LIVE_BASE_URL=f"http://127.0.0.1:{port}",
        GEMB2_LIVE_MAX_USD="1",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert counts(run.stdout) == {"skipped": 2}
    assert "gemini-api is unreachable: ConnectError" in run.stdout


TOML_PROFILE = """\
name = "toml-profile"
normalized_below_3072 = true
task_type_changes_vector = true
max_requests_per_call = 20
batch_accepts_media = false

[limits]
max_audio_seconds = 30
max_video_seconds = 20
max_images = 3
max_pdf_pages = 2
"""


def test_the_live_path_runs_the_same_tests(tmp_path: Path) -> None:
    """Google's place taken by an emulator serving another profile (TOML): the live
    fixtures, key and all, run every test they can, checking that profile's facts."""
    profile = tmp_path / "p.toml"
    profile.write_text(TOML_PROFILE)
    report = tmp_path / "facts.json"
    with Emulator(port=0, profile=profile) as emulator:
        run = contract(
            GEMB2_LIVE="1",
            GOOGLE_API_KEY=FAKE_KEY,
            GEMB2_LIVE_BASE_URL=emulator.base_url,
            GEMB2_LIVE_MAX_USD="10",
            GEMB2_LIVE_BATCH_TIMEOUT="60",
            GEMB2_CONTRACT_PROFILE=str(profile),
            GEMB2_CONTRACT_REPORT=str(report),
        )
        requests, jobs = emulator.stats.requests, emulator.batch.stats.created
    assert run.returncode == 0, run.stdout + run.stderr
    assert "profile 'toml-profile'" in run.stdout
    assert counts(run.stdout) == {"passed": 12, "skipped": 2}
    assert "gemini-api cannot be made to answer 429 on demand" in run.stdout
    assert "GOOGLE_CLOUD_PROJECT is not set" in run.stdout
    assert requests > 0 and jobs == 1
    assert json.loads(report.read_text()) == {
        "batch_accepts_media": False,
        "normalized_below_3072": True,
        "prefix_changes_vector": True,
        "task_type_changes_vector": True,
    }
