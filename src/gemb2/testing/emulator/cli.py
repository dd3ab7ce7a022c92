"""``gemb2 emulator`` (``python -m gemb2.testing.emulator``): serve the stand-in API."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from gemb2.errors import ConfigError
from gemb2.model.profile import BUNDLED, load_profile
from gemb2.testing.emulator.config import FAULT_KINDS, EmulatorConfig
from gemb2.testing.emulator.server import Emulator

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every knob of ``EmulatorConfig`` plus where to listen."""
    d = EmulatorConfig()
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for a free one ({DEFAULT_PORT})"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=d.latency_per_request,
        help="seconds each call takes, own work included",
    )
    parser.add_argument(
        "--latency-per-item", type=float, default=d.latency_per_item, help="seconds more per item"
    )
    parser.add_argument(
        "--rate-limit-rpm", type=float, default=None, help="requests per minute, then 429"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=d.fault_rate, help="probability a request faults"
    )
    parser.add_argument(
        "--faults",
        default=",".join(d.faults),
        help=f"comma-separated fault kinds from {','.join(FAULT_KINDS)} (default %(default)s)",
    )
    parser.add_argument(
        "--fail-first", type=int, default=None, help="only the first N requests may fault"
    )
    parser.add_argument(
        "--retry-delay", type=float, default=d.retry_delay, help="retryDelay of injected 429s"
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=d.slow_seconds, help="sleep of a 'slow' fault"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the fault draws")
    parser.add_argument(
        "--profile",
        help="the service facts to serve: a profile file (JSON/TOML, e.g. written by "
        f"`gemb2 doctor --write-profile`) or a bundled one ({', '.join(sorted(BUNDLED))}); "
        "default: gemb2's defaults",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help=f"requests allowed in one batch (default: the profile's, {d.max_batch})",
    )
    parser.add_argument(
        "--dimensions-default",
        type=int,
        default=d.dimensions_default,
        help="dimension when a request names none",
    )
    parser.add_argument(
        "--batch-delay", type=float, default=d.batch_delay, help="seconds a batch job takes"
    )
    parser.add_argument(
        "--batch-fail-every", type=int, default=None, help="every Nth batch item fails"
    )
    parser.add_argument(
        "--batch-fail-indices", default="", help="comma-separated batch positions that fail"
    )
    parser.add_argument(
        "--batch-rejects-media",
        action="store_true",
        help="batch jobs refuse items that hold media (as a text-only Batch Mode would)",
    )
    parser.add_argument(
        "--reject-api-key",
        action="store_true",
        help="answer 403 'API key not valid', echoing the request's key",
    )
    parser.add_argument(
        "--echo-api-key",
        action="store_true",
        help="error messages echo the request's key (as some proxies do)",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The knobs given; the facts left unset (max_batch, batch media) are the profile's."""
    d = EmulatorConfig()
    knobs = {
        "latency_per_request": getattr(args, "latency", d.latency_per_request),
        "latency_per_item": getattr(args, "latency_per_item", d.latency_per_item),
        "rate_limit_rpm": getattr(args, "rate_limit_rpm", None),
        "fault_rate": getattr(args, "fault_rate", d.fault_rate),
        "faults": getattr(args, "faults", d.faults),
        "fail_first": getattr(args, "fail_first", None),
        "retry_delay": getattr(args, "retry_delay", d.retry_delay),
        "slow_seconds": getattr(args, "slow_seconds", d.slow_seconds),
        "seed": getattr(args, "seed", d.seed),
        "max_batch": getattr(args, "max_batch", None),
        "dimensions_default": getattr(args, "dimensions_default", d.dimensions_default),
        "batch_delay": getattr(args, "batch_delay", d.batch_delay),
        "batch_fail_every": getattr(args, "batch_fail_every", None),
        "batch_fail_indices": getattr(args, "batch_fail_indices", ""),
        "batch_accepts_media": False if getattr(args, "batch_rejects_media", False) else None,
        "reject_api_key": getattr(args, "reject_api_key", False),
        "echo_api_key": getattr(args, "echo_api_key", False),
    }
    unset = {"max_batch", "batch_accepts_media"}
    return EmulatorConfig.model_validate(
        {k: v for k, v in knobs.items() if not (k in unset and v is None)}
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; 2 on a bad setting or a port that cannot be bound."""
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        print(f"gemb2 emulator: invalid setting: {exc}", file=sys.stderr)
        return 2
    try:
        profile = load_profile(getattr(args, "profile", None))
    except ConfigError as exc:
        print(f"gemb2 emulator: {exc}", file=sys.stderr)
        return 2
    emu = Emulator(
        port=getattr(args, "port", DEFAULT_PORT),
        config=config,
        host=getattr(args, "host", "127.0.0.1"),
        profile=profile,
    )
    try:
        emu.start()
    except OSError as exc:
        print(f"gemb2 emulator: cannot listen on {emu.host}:{emu.port}: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def _on_term(signum: int, frame: FrameType | None) -> None:
            done.set()

        previous = signal.signal(signal.SIGTERM, _on_term)
    print(
        f"gemb2 emulator listening on {emu.base_url} (Ctrl-C to stop), serving profile "
        f"{profile.name!r}; its vectors are deterministic stand-ins for tests, not Gemini's.",
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("gemb2 emulator stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gemb2.testing.emulator",
        description="Local stand-in for the Gemini API's embedding endpoints (for tests).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
