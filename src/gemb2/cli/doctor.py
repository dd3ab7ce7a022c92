"""``gemb2 doctor``: check access to the model and measure the service facts gemb2 relies on.

Google's material disagrees on several of them (audio 80 s or 180 s, whether outputs
below 3072 come back normalised, whether ``taskType`` does anything, whether Batch Mode
takes media), so the package's defaults are guesses until someone with a key looks.
This looks: a few small calls (the price is shown and confirmed first), a report beside
the package's defaults, and a profile file the package (``--limits FILE``) and the
emulator (``gemb2 emulator --profile FILE``) load.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gemb2 import redaction
from gemb2.cli import probes
from gemb2.cli.probes import LIMIT_SEARCHES, SEARCHES, MediaMaker, Outcome, ProbeError, Service
from gemb2.engine.settings import API_KEY_ENV_VARS, EmbedSettings
from gemb2.errors import Gemb2Error
from gemb2.inputs.media import Item
from gemb2.inputs.tokens import estimate_tokens
from gemb2.model.catalog import DEFAULT_MODEL, get_model
from gemb2.model.pricing import cost_usd, media_tokens
from gemb2.model.profile import ErrorTexts, Profile

TEXT = "Honeybees collect nectar from flowers and turn it into honey."
PREFIXED = f"task: search result | query: {TEXT}"
BASE_MEDIA = {"image": 1, "pdf": 1, "audio": 2, "video": 2}  # images, pages, seconds
# the basic checks' texts, one call each: access, 3 contents, 768-d, repeat, prefix,
# two taskTypes, unknown model
BASIC_TEXT_CALLS = 1 + 3 + 1 + 1 + 1 + 2 + 1
BATCH_POLL_SECONDS = (0.5, 10.0)  # first and longest wait between looks at the job


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check access to the model and measure the service's facts (writes a profile)",
        description="Check access to the model, measure what the service does (normalisation "
        "below 3072, taskType and prefix effects, requests per call, error bodies, media "
        "limits with --probe-limits) and compare it with gemb2's defaults. The estimated "
        "cost is shown and must be confirmed (--yes) before any call.",
    )
    p.add_argument("--base-url", help="API endpoint (a proxy, or `gemb2 emulator`)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model to check ({DEFAULT_MODEL})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--probe-limits",
        action="store_true",
        help="find images per item, PDF pages, audio and video seconds (to within 2 s) by "
        "probing around each boundary (costs more: audio and video are priced per second)",
    )
    p.add_argument(
        "--probe-batch",
        action="store_true",
        help="submit one Batch Mode job (a text and an image) to see whether it takes media",
    )
    p.add_argument(
        "--batch-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for that job (default 900; Batch Mode may take up to 24 h)",
    )
    p.add_argument("--write-profile", type=Path, metavar="FILE", help="write what was measured")
    p.add_argument("--name", help="the written profile's name (default: measured-DATE)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (120)")
    p.add_argument("--yes", action="store_true", help="confirm the estimated cost")


# --- the plan ----------------------------------------------------------------------------


def _basic_tokens(spec_modalities: frozenset[str]) -> dict[str, int]:
    tokens = {"text": BASIC_TEXT_CALLS * estimate_tokens(PREFIXED)}
    for modality, amount in BASE_MEDIA.items():
        if modality in spec_modalities:
            tokens[modality] = media_tokens(modality, amount)
    return tokens


def plan_cost(args: argparse.Namespace, spec_modalities: frozenset[str]) -> tuple[float, float]:
    """(at most, expected) dollars of this run at list prices: every probe billed, and
    what it sends when the package's defaults are right with refused probes unbilled."""
    upper = expected = cost_usd(_basic_tokens(spec_modalities))
    searches = ["max_requests_per_call"]
    if args.probe_limits:
        searches += [n for n in LIMIT_SEARCHES if SEARCHES[n].modality in spec_modalities]
    for name in searches:
        s = SEARCHES[name]
        upper += probes.search_cost(s)
        expected += sum(
            cost_usd(probes.probe_tokens(s, x)) for x, ok in probes.probe_points(s, s.guess) if ok
        )
    if args.probe_batch:
        batch = cost_usd({"text": estimate_tokens(TEXT), "image": media_tokens("image", 1)})
        upper += batch / 2
        expected += batch / 2
    return upper, expected


def _confirm(args: argparse.Namespace, upper: float, expected: float, where: str) -> bool:
    line = (
        f"gemb2 doctor will call {args.model} at {where}: estimated cost at most "
        f"${upper:.4f} at list prices (about ${expected:.4f} if gemb2's defaults are right; "
        "requests refused over a limit are normally not billed)"
    )
    print(line, file=sys.stderr, flush=True)
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(
            "gemb2 doctor: error: not confirmed: pass --yes to accept this cost "
            "(no terminal to ask)",
            file=sys.stderr,
        )
        return False
    print("Proceed? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


# --- the checks --------------------------------------------------------------------------


class _Doctor:
    def __init__(self, service: Service, media: MediaMaker, modalities: frozenset[str]):
        self.service = service
        self.media = media
        self.modalities = modalities

    def texts(self, texts: list[str], **kw: Any) -> Outcome:
        tokens = {"text": sum(estimate_tokens(t) for t in texts)}
        return self.service.embed([Item.of(t) for t in texts], tokens=tokens, **kw)

    def access(self) -> list[float]:
        out = self.texts([TEXT], dims=3072)
        if out.accepted and len(out.vectors) == 1:
            return out.vectors[0]
        where, model = self.service.where, self.service.settings.spec.id
        if out.code in (401, 403):
            raise ProbeError(
                f"{where} refused the credentials ({out.code} {out.status}): {out.message}"
            )
        if out.code == 404:
            raise ProbeError(f"{model} is not found at {where} (404 {out.status}): {out.message}")
        if out.accepted:
            raise ProbeError(f"{where} answered one text with {len(out.vectors)} vectors")
        raise ProbeError(
            f"{where} refused a one-line text ({out.code} {out.status}): {out.message}"
        )

    def basics(self, report: dict[str, Any], errors: dict[str, str]) -> None:
        full = self.access()
        report["access"] = True
        report["dimensions_default"] = len(full)
        three = self.texts([f"{TEXT} ({i})" for i in range(3)])
        report["contents_in_vectors_out"] = three.accepted and len(three.vectors) == 3
        first, again = self.texts([TEXT]), self.texts([TEXT])
        prefixed = self.texts([PREFIXED])
        q = self.texts([TEXT], task_type="RETRIEVAL_QUERY")
        c = self.texts([TEXT], task_type="CLASSIFICATION")
        for name, out in (("768", first), ("prefix", prefixed), ("taskType", q), ("taskType", c)):
            if not out.accepted or len(out.vectors) != 1:
                raise ProbeError(f"the {name} check was refused ({out.code}): {out.message}")
        noise = probes.cosine_gap(first.vectors[0], again.vectors[0])
        norm = probes.norm(first.vectors[0])
        report["norm_at_768"] = round(norm, 6)
        report["normalized_below_3072"] = abs(norm - 1.0) < 1e-3
        report["repeat_noise"] = noise
        report["prefix_changes_vector"] = probes.differs(
            first.vectors[0], prefixed.vectors[0], noise
        )
        report["task_type_changes_vector"] = probes.differs(q.vectors[0], c.vectors[0], noise)
        unknown = self.texts([TEXT], model=probes.UNKNOWN_MODEL)
        report["unknown_model"] = {"code": unknown.code, "status": unknown.status}
        if unknown.code == 404:
            errors["model_not_found"] = _not_found_template(unknown.message)
        self._requests_per_call(report, errors)
        report["media_accepted"] = {
            m: self._base_media(m) for m in BASE_MEDIA if m in self.modalities
        }

    def _requests_per_call(self, report: dict[str, Any], errors: dict[str, str]) -> None:
        refusals: list[tuple[int, Outcome]] = []

        def accepts(n: int) -> bool:
            out = self.texts([probes.probe_text(i) for i in range(n)])
            if out.code is not None and out.code != 400:  # not a refusal of the count
                raise ProbeError(
                    f"a call of {n} texts failed with {out.code} {out.status}: {out.message}"
                )
            if not out.accepted:
                refusals.append((n, out))
            return out.accepted and len(out.vectors) == n

        found, capped = probes.find_limit(accepts, SEARCHES["max_requests_per_call"])
        report["max_requests_per_call"] = found
        report["max_requests_per_call_at_least"] = capped
        over = next((o for n, o in refusals if n == found + 1), None)
        report["too_many_requests"] = (
            {"code": over.code, "status": over.status} if over is not None else None
        )
        if over is not None and over.code == 400:
            errors["too_many_requests"] = probes.template_of(
                over.message, {"max": str(found), "got": str(found + 1)}
            )

    def _media_item(self, modality: str, amount: int) -> tuple[Item, dict[str, int]]:
        if modality == "image":
            return Item.of([self.media.image(i) for i in range(amount)]), {
                "image": media_tokens("image", amount)
            }
        make = {"pdf": self.media.pdf, "audio": self.media.audio, "video": self.media.video}
        return Item.of(make[modality](amount)), {modality: media_tokens(modality, amount)}

    def media_accepts(self, modality: str, amount: int) -> bool:
        item, tokens = self._media_item(modality, amount)
        out = self.service.embed([item], tokens=tokens)
        if out.code is not None and out.code != 400:
            raise ProbeError(
                f"{modality} probe ({amount}) failed with {out.code} {out.status}: {out.message}"
            )
        return out.accepted and len(out.vectors) == 1

    def _base_media(self, modality: str) -> bool:
        return self.media_accepts(modality, BASE_MEDIA[modality])

    def limits(self, report: dict[str, Any]) -> None:
        found: dict[str, Any] = {}
        at_least: list[str] = []
        for name in LIMIT_SEARCHES:
            s = SEARCHES[name]
            if not report["media_accepted"].get(s.modality):
                found[name] = None  # not even the smallest was accepted: nothing to bisect
                continue
            value, capped = probes.find_limit(functools.partial(self.media_accepts, s.modality), s)
            found[name] = float(value) if name.endswith("_seconds") else value
            if capped:
                at_least.append(name)
        report["limits"] = found
        report["limits_at_least"] = at_least

    def batch(self, report: dict[str, Any], timeout: float) -> None:
        """One Batch Mode job of a text and an image: does the image get a vector?"""
        from google.genai import errors as genai_errors
        from google.genai import types

        if self.service.settings.vertexai:
            report["batch_accepts_media"] = None
            report["batch_note"] = "Batch Mode is a Developer API feature: not probed on Vertex AI"
            return
        client = self.service.client()
        image = Item.of(self.media.image(0))
        src = types.EmbeddingsBatchJobSource(
            inlined_requests=types.EmbedContentBatch(
                contents=[Item.of(TEXT).to_content(), image.to_content()],
                config=types.EmbedContentConfig(output_dimensionality=probes.COMPARE_DIMS),
            )
        )
        try:
            with warnings.catch_warnings():  # the SDK marks create_embeddings experimental
                warnings.simplefilter("ignore")
                job = client.batches.create_embeddings(model=self.service.settings.spec.id, src=src)
            deadline = time.monotonic() + timeout
            wait, longest = BATCH_POLL_SECONDS
            while str(job.state) not in _DONE and time.monotonic() < deadline:
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                wait = min(longest, wait * 2)
                job = client.batches.get(name=job.name)
        except genai_errors.APIError as exc:
            if exc.code == 400:  # the job refused as a whole
                report["batch_accepts_media"] = False
                report["batch_note"] = redaction.redact_text(str(exc.message))
                return
            raise ProbeError(f"Batch Mode: {exc.code} {exc.status}: {exc.message}") from None
        state = str(job.state).removeprefix("JobState.")
        if state not in _DONE:
            with contextlib.suppress(genai_errors.APIError):
                client.batches.cancel(name=job.name)  # not left running (and billed) unseen
            report["batch_accepts_media"] = None
            report["batch_note"] = (
                f"the job {job.name} was still {state} after {timeout:g} s (cancelled); "
                "try a longer --batch-timeout"
            )
            return
        answers = (job.dest.inlined_embed_content_responses or []) if job.dest else []
        if state != "JOB_STATE_SUCCEEDED" or len(answers) != 2:
            report["batch_accepts_media"] = False
            report["batch_note"] = f"the job ended {state} with {len(answers)} answers"
            return
        media = answers[1]
        ok = media.error is None and bool(media.response and media.response.embedding)
        report["batch_accepts_media"] = ok
        if not ok and media.error is not None:
            report["batch_note"] = redaction.redact_text(str(media.error.message))


_DONE = {
    f"{p}{s}"
    for p in ("", "JobState.")
    for s in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
}


def _not_found_template(message: str) -> str:
    values = {"model": probes.UNKNOWN_MODEL}
    version = re.search(r"\bv1(?:alpha|beta\d*)?\b", message)
    if version:
        values["version"] = version.group(0)
    method = re.search(r"\b(batchEmbedContents|embedContent)\b", message)
    if method:
        values["method"] = method.group(0)
    return probes.template_of(message, values)


# --- the report --------------------------------------------------------------------------


def _profile(
    args: argparse.Namespace, report: dict[str, Any], defaults: Profile, errors: dict[str, str]
) -> Profile:
    limits = defaults.limits.model_dump()
    measured_facts = [
        "normalized_below_3072",
        "task_type_changes_vector",
        "prefix_changes_vector",
        "max_requests_per_call",
    ]
    for name, value in (report.get("limits") or {}).items():
        if value is not None:
            limits[name] = value
            measured_facts.append(f"limits.{name}")
    limits["max_batch"] = min(100, limits["max_batch"], report["max_requests_per_call"])
    batch_media = report.get("batch_accepts_media")
    if batch_media is not None:
        measured_facts.append("batch_accepts_media")
    try:
        texts = ErrorTexts(**{**defaults.errors.model_dump(), **errors})
    except ValueError:  # a message that cannot be a template: keep ours
        texts = defaults.errors
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return Profile(
        name=args.name or f"measured-{now:%Y-%m-%d}",
        description=f"measured by gemb2 doctor against {report['target']} on {now:%Y-%m-%d}",
        model=defaults.model,
        measured={
            "at": now.isoformat(),
            "target": report["target"],
            "facts": measured_facts,
            "at_least": report.get("limits_at_least", []),
            "gemb2": _version("gemb2"),
            "google_genai": _version("google-genai"),
        },
        limits=limits,
        max_requests_per_call=report["max_requests_per_call"],
        normalized_below_3072=report["normalized_below_3072"],
        task_type_changes_vector=report["task_type_changes_vector"],
        prefix_changes_vector=report["prefix_changes_vector"],
        batch_accepts_media=defaults.batch_accepts_media if batch_media is None else batch_media,
        errors=texts,
    )


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover
        return None


def _yes_no(value: Any) -> str:
    if value is None:
        return "not measured"
    return "yes" if value is True else "no" if value is False else str(value)


def _status(value: dict[str, Any] | None) -> str:
    return f"{value['code']} {value['status']}" if value else "not seen"


def _rows(report: dict[str, Any], defaults: Profile) -> list[tuple[str, str, str, bool]]:
    """(what, measured, gemb2's default, the same?) for each fact."""
    d = defaults.facts()
    norm = f" (|v| = {report['norm_at_768']:.4f} at 768)"
    per_call = report["max_requests_per_call"]
    rows = [
        ("N contents -> N vectors", _yes_no(report["contents_in_vectors_out"]), "required", True),
    ]
    rows[0] = (*rows[0][:3], bool(report["contents_in_vectors_out"]))
    for key, what, extra in (
        ("normalized_below_3072", "normalised below 3072", norm),
        ("task_type_changes_vector", "taskType changes the vector", ""),
        ("prefix_changes_vector", "prefix changes the vector", ""),
    ):
        rows.append((what, _yes_no(report[key]) + extra, _yes_no(d[key]), report[key] == d[key]))
    capped = "+" if report["max_requests_per_call_at_least"] else ""
    rows.append(
        (
            "requests per call",
            f"{per_call}{capped}",
            str(d["max_requests_per_call"]),
            per_call == d["max_requests_per_call"],
        )
    )
    for key, what, expected in (
        ("too_many_requests", "too many requests answer", "400 INVALID_ARGUMENT"),
        ("unknown_model", "unknown model answer", "404 NOT_FOUND"),
    ):
        shown = _status(report[key])
        rows.append((what, shown, expected, shown == expected))
    for modality, ok in report["media_accepted"].items():
        rows.append((f"a small {modality} accepted", _yes_no(ok), "yes", bool(ok)))
    at_least = set(report.get("limits_at_least") or [])
    for name, value in (report.get("limits") or {}).items():
        default = d["limits"][name]
        if value is None:
            rows.append((name.replace("_", " "), "not measured", f"{default:g}", True))
            continue
        shown = f"{value:g}{'+' if name in at_least else ''}"
        rows.append((name.replace("_", " "), shown, f"{default:g}", value == default))
    if "batch_accepts_media" in report:
        value = report["batch_accepts_media"]
        same = value is None or value == d["batch_accepts_media"]
        rows.append(
            ("Batch Mode takes media", _yes_no(value), _yes_no(d["batch_accepts_media"]), same)
        )
    return rows


def _print_report(report: dict[str, Any], defaults: Profile) -> None:
    rows = _rows(report, defaults)
    width = max(len(r[0]) for r in rows) + 2
    mwidth = max(len(r[1]) for r in rows) + 2
    print(
        f"gemb2 doctor: {report['model']} at {report['target']}: access ok "
        f"({report['dimensions_default']}-d vectors by default)"
    )
    print(f"  {'':<{width}}{'measured':<{mwidth}}gemb2 default")
    for what, measured, default, same in rows:
        mark = "" if same else "  <- differs"
        print(f"  {what:<{width}}{measured:<{mwidth}}{default}{mark}")
    if report.get("batch_note"):
        print(f"  Batch Mode: {report['batch_note']}")
    if not report["limits_probed"]:
        print("  media limits: not probed (pass --probe-limits)")
    print(
        f"  {report['requests']} requests; estimated cost ${report['estimated_cost_usd']:.4f} "
        f"at most, about ${report['spent_usd']:.4f} spent at list prices"
    )
    if report.get("profile"):
        print(
            f"  profile written to {report['profile']}: `gemb2 emulator --profile FILE` serves "
            "it; `--limits FILE` and `load_profile(FILE).limits` apply its limits"
        )


# --- the command -------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> EmbedSettings:
    base_url = args.base_url or os.environ.get("GEMB2_BASE_URL")
    vertex = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
    has_key = any(os.environ.get(v) for v in API_KEY_ENV_VARS)
    if not (base_url or has_key or vertex):
        raise ProbeError(
            f"no credentials: set {' or '.join(API_KEY_ENV_VARS)} (or GOOGLE_GENAI_USE_VERTEXAI=1 "
            "with GOOGLE_CLOUD_PROJECT), or pass --base-url URL (e.g. of `gemb2 emulator`)"
        )
    extra: dict[str, Any] = {}
    if vertex:
        extra = {
            "vertexai": True,
            "project": os.environ.get("GOOGLE_CLOUD_PROJECT"),
            "location": os.environ.get("GOOGLE_CLOUD_LOCATION", "us-central1"),
        }
    return EmbedSettings(model=args.model, base_url=base_url, timeout=args.timeout, **extra)


def run(args: argparse.Namespace) -> int:
    """0: measured; 1: measured, and the service breaks something gemb2 relies on;
    2: nothing measured (no credentials, refused, unreachable, not confirmed)."""
    try:
        spec = get_model(args.model)
        settings = _settings(args)
    except (ProbeError, Gemb2Error, ValueError) as exc:
        print(f"gemb2 doctor: error: {redaction.redact_text(str(exc))}", file=sys.stderr)
        return 2
    modalities = frozenset(spec.modalities)
    defaults = Profile(model=spec.id) if spec.id != DEFAULT_MODEL else Profile()
    upper, expected = plan_cost(args, modalities)
    service = Service(settings)
    if not _confirm(args, upper, expected, service.where):
        return 2
    media = MediaMaker()
    report: dict[str, Any] = {"model": spec.id, "target": redaction.redact_text(service.where)}
    errors: dict[str, str] = {}
    try:
        doctor = _Doctor(service, media, modalities)
        doctor.basics(report, errors)
        if args.probe_limits:
            doctor.limits(report)
        else:
            report["limits"] = dict.fromkeys(LIMIT_SEARCHES)
            report["limits_at_least"] = []
        if args.probe_batch:
            doctor.batch(report, args.batch_timeout)
    except ProbeError as exc:
        print(f"gemb2 doctor: error: {redaction.redact_text(str(exc))}", file=sys.stderr)
        return 2
    finally:
        media.close()
        service.close()
    report["limits_probed"] = bool(args.probe_limits)
    report["defaults"] = defaults.facts()
    report["estimated_cost_usd"] = round(upper, 6)
    report["expected_cost_usd"] = round(expected, 6)
    report["spent_usd"] = round(service.spent_usd(), 6)
    report["requests"] = service.requests
    report["profile"] = None
    if args.write_profile:
        profile = _profile(args, report, defaults, errors)
        try:
            profile.save(args.write_profile)
        except OSError as exc:
            print(f"gemb2 doctor: error: cannot write {args.write_profile}: {exc}", file=sys.stderr)
            return 2
        report["profile"] = str(args.write_profile)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, defaults)
    if not report["contents_in_vectors_out"]:
        print(
            "gemb2 doctor: the service did not answer N contents with N vectors: gemb2 "
            "refuses such answers (ResponseMismatchError)",
            file=sys.stderr,
        )
        return 1
    return 0
