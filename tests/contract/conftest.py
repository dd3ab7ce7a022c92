"""The contract suite's target: the bundled emulator (default) or Google (``GEMB2_LIVE=1``).

Only these fixtures know which one it is. Offline, an emulator serving the profile under
test is started here; live, the real Gemini API (``GOOGLE_API_KEY`` or
``GEMINI_API_KEY``) and Vertex AI (``GOOGLE_CLOUD_PROJECT`` and Application Default
Credentials) are called, through the same google-genai client and the same tests.

Environment:
  GEMB2_LIVE=1                 call Google instead of the emulator
  GEMB2_LIVE_MAX_USD           refuse a live run whose estimated cost is above this (0.05)
  GEMB2_CONTRACT_PROFILE       the facts to check, a profile file or name (gemb2's defaults)
  GEMB2_CONTRACT_REPORT        write the facts observed to this JSON file
  GEMB2_LIVE_BASE_URL          live: another endpoint (a proxy)
  GEMB2_LIVE_BATCH_TIMEOUT     live: seconds to wait for the Batch Mode job (600)
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemb2.engine.retry import is_transport_error
from gemb2.model.pricing import cost_usd, media_tokens
from gemb2.model.profile import Profile, load_profile
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

LIVE = os.environ.get("GEMB2_LIVE", "") == "1"
DEFAULT_MAX_USD = 0.05
PROFILE: Profile = load_profile(os.environ.get("GEMB2_CONTRACT_PROFILE") or None)
MODEL = PROFILE.model
HERE = Path(__file__).resolve().parent


def max_usd() -> float:
    raw = os.environ.get("GEMB2_LIVE_MAX_USD", "")
    try:
        return float(raw) if raw else DEFAULT_MAX_USD
    except ValueError:
        raise pytest.UsageError(f"GEMB2_LIVE_MAX_USD={raw!r} is not a number") from None


def usd(
    *,
    text_tokens: int = 0,
    images: int = 0,
    pdf_pages: int = 0,
    audio_seconds: float = 0,
    video_seconds: float = 0,
    batch: bool = False,
) -> float:
    """List price of what a test sends (every request counted, refused ones too)."""
    tokens = {"text": text_tokens}
    for modality, amount in (
        ("image", images),
        ("pdf", pdf_pages),
        ("audio", audio_seconds),
        ("video", video_seconds),
    ):
        if amount:
            tokens[modality] = media_tokens(modality, amount)
    return cost_usd(tokens, batch_mode=batch)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cost(usd): what a contract test spends on a live target, at list prices"
    )


def _is_contract(item: pytest.Item) -> bool:
    return HERE in Path(str(item.fspath)).resolve().parents


ESTIMATE = pytest.StashKey[float]()
OBSERVED: dict[str, Any] = {}  # fact -> value, as the tests saw it


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: price what will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Print the estimated cost of the contract tests selected, before any of them runs."""
    chosen = [i for i in items if _is_contract(i)]
    if not chosen:
        return
    total = 0.0
    for item in chosen:
        marker = item.get_closest_marker("cost")
        if marker is None:
            raise pytest.UsageError(f"{item.nodeid} declares no @pytest.mark.cost(usd)")
        total += float(marker.args[0])
    config.stash[ESTIMATE] = total
    target = "Google (GEMB2_LIVE=1)" if LIVE else "the bundled emulator (free)"
    line = (
        f"contract suite: {len(chosen)} tests against {target}, profile {PROFILE.name!r}; "
        f"estimated cost ${total:.4f} at list prices if run live (cap ${max_usd():g}, "
        "GEMB2_LIVE_MAX_USD)"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


def _within_budget(config: pytest.Config, bills: bool) -> None:
    """Before a target's first call: a target that bills refuses a run over the cap."""
    estimate = config.stash.get(ESTIMATE, 0.0) if bills else 0.0
    cap = max_usd()
    if estimate > cap:
        pytest.exit(
            f"refusing the live contract run: estimated ${estimate:.4f} is over the cap of "
            f"${cap:g}; raise GEMB2_LIVE_MAX_USD or select fewer tests (e.g. -k 'not video')",
            returncode=2,
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if OBSERVED:
        facts = ", ".join(f"{k}={v!r}" for k, v in sorted(OBSERVED.items()))
        terminalreporter.write_line(f"contract suite observed: {facts}")


# --- the target --------------------------------------------------------------------------


@dataclass
class Target:
    """One service to check: a google-genai client and what the test may do to it."""

    name: str
    client: genai.Client
    model: str = MODEL
    profile: Profile = PROFILE
    emulator: Emulator | None = None  # set when the target can be made to answer 429
    batch_timeout: float = 600.0
    observed: dict[str, Any] = field(default_factory=dict)

    def embed(self, contents: list[types.Content], **config: Any) -> list[list[float]]:
        response = self.client.models.embed_content(
            model=config.pop("model", self.model),
            contents=contents,
            config=types.EmbedContentConfig(**config) if config else None,
        )
        return [list(e.values or []) for e in response.embeddings or []]

    def record(self, fact: str, value: Any, expected: Any = None) -> None:
        """A fact observed (not assumed); a warning when the profile says otherwise."""
        self.observed[fact] = value
        if expected is not None and value != expected:
            warnings.warn(
                f"{self.name}: {fact} is {value!r} but profile {self.profile.name!r} says "
                f"{expected!r}",
                UserWarning,
                stacklevel=2,
            )

    def rate_limited(self) -> Callable[[], None]:
        """Make the next call answer 429; returns the undo. Only a local target can."""
        if self.emulator is None:
            pytest.skip(f"{self.name} cannot be made to answer 429 on demand")
        emu = self.emulator
        emu.configure(fault_rate=1.0, faults=["429"], fail_first=1, retry_delay=7.5)
        return lambda: emu.configure(fault_rate=0.0, fail_first=None)


def _http(base_url: str | None) -> types.HttpOptions:
    # one attempt: the suite sees the service's own answers
    http = types.HttpOptions(timeout=120_000, retry_options=types.HttpRetryOptions(attempts=1))
    if base_url:
        http.base_url = base_url
    return http


def _reachable(target: Target) -> Target:
    """One tiny call, so an unreachable service skips the suite instead of failing it."""
    try:
        target.embed([types.Content(parts=[types.Part(text="contract check")])])
    except genai_errors.APIError as exc:
        if exc.code in (401, 403):
            pytest.skip(f"{target.name} refused the credentials ({exc.code} {exc.status})")
        raise
    except Exception as exc:  # httpx/aiohttp/OS errors: no network here
        if isinstance(exc, OSError) or is_transport_error(exc):
            pytest.skip(f"{target.name} is unreachable: {type(exc).__name__}: {exc}")
        raise
    return target


@pytest.fixture(scope="session")
def contract_emulator() -> Iterator[Emulator | None]:
    """The emulator serving the profile under test (offline runs only)."""
    if LIVE:
        yield None
        return
    with Emulator(port=0, profile=PROFILE) as emu:
        yield emu


@pytest.fixture(scope="session")
def observed_facts() -> Iterator[dict[str, Any]]:
    yield OBSERVED
    path = os.environ.get("GEMB2_CONTRACT_REPORT")
    if path:
        Path(path).write_text(json.dumps(OBSERVED, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def target(
    request: pytest.FixtureRequest,
    contract_emulator: Emulator | None,
    live_credentials: dict[str, str],
    observed_facts: dict[str, Any],
) -> Target:
    """The Gemini Developer API: the emulator, or Google with GEMB2_LIVE=1 and a key."""
    if contract_emulator is not None:
        client = genai.Client(
            api_key="contract-key", http_options=_http(contract_emulator.base_url)
        )
        _within_budget(request.config, bills=False)
        return _reachable(
            Target(
                "emulator",
                client,
                emulator=contract_emulator,
                batch_timeout=60.0,
                observed=observed_facts,
            )
        )
    key = live_credentials.get("GOOGLE_API_KEY") or live_credentials.get("GEMINI_API_KEY")
    if not key:
        pytest.skip("GEMB2_LIVE=1 but neither GOOGLE_API_KEY nor GEMINI_API_KEY is set")
    client = genai.Client(api_key=key, http_options=_http(os.environ.get("GEMB2_LIVE_BASE_URL")))
    timeout = float(os.environ.get("GEMB2_LIVE_BATCH_TIMEOUT", "600"))
    _within_budget(request.config, bills=True)
    return _reachable(Target("gemini-api", client, batch_timeout=timeout, observed=observed_facts))


@pytest.fixture(scope="session")
def vertex_target(
    request: pytest.FixtureRequest,
    contract_emulator: Emulator | None,
    observed_facts: dict[str, Any],
) -> Target:
    """Vertex AI: the emulator's Vertex routes, or Google with GEMB2_LIVE=1 and a project."""
    if contract_emulator is not None:
        from google.oauth2.credentials import Credentials

        client = genai.Client(
            vertexai=True,
            project="contract-project",
            location="us-central1",
            credentials=Credentials(token="contract-token"),
            http_options=_http(contract_emulator.base_url),
        )
        _within_budget(request.config, bills=False)
        return _reachable(Target("emulator (Vertex AI)", client, observed=observed_facts))
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        pytest.skip("GEMB2_LIVE=1 but GOOGLE_CLOUD_PROJECT is not set (Vertex AI)")
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except DefaultCredentialsError as exc:
        pytest.skip(f"no Application Default Credentials for Vertex AI: {exc}")
    client = genai.Client(
        vertexai=True,
        project=project,
        location=os.environ.get("GOOGLE_CLOUD_LOCATION", "us-central1"),
        credentials=credentials,
        http_options=_http(None),
    )
    _within_budget(request.config, bills=True)
    return _reachable(Target("vertex-ai", client, observed=observed_facts))


# --- media at the limits -----------------------------------------------------------------


class Media:
    """Generated files of a given size, made once per session (lowest bitrates)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _part(self, path: Path, mime: str) -> types.Part:
        return types.Part(inline_data=types.Blob(data=path.read_bytes(), mime_type=mime))

    def images(self, n: int) -> list[types.Part]:
        return [
            self._part(
                samples.make_png(
                    self.folder / f"img{i}.png",
                    f"contract image {i}",
                    color=(40 * i % 256, 90, 200),
                    size=(32, 32),
                ),
                "image/png",
            )
            for i in range(n)
        ]

    def pdf(self, pages: int) -> types.Part:
        path = samples.make_pdf(
            self.folder / f"pages{pages}.pdf", [f"contract page {k + 1}" for k in range(pages)]
        )
        return self._part(path, "application/pdf")

    def audio(self, seconds: float) -> types.Part:
        path = self.folder / f"audio{seconds:g}.wav"
        if not path.exists():
            samples.make_wav(path, seconds, description="a contract tone", sample_rate=8000)
        return self._part(path, "audio/wav")

    def video(self, seconds: float) -> types.Part:
        path = self.folder / f"video{seconds:g}.mp4"
        if not path.exists():
            samples.make_mp4(path, seconds, description="a contract video", fps=1, size=(64, 64))
        return self._part(path, "video/mp4")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("contract-media"))
