"""The HTTP side: the Gemini API's and Vertex AI's embedding routes over stdlib http.server.

Requests are answered as Google's endpoints answer them (same paths, bodies and
error shapes), so the real ``google-genai`` SDK can be pointed here with
``HttpOptions(base_url=...)`` and exercised end to end without a network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gemb2.model.catalog import MODELS, ModelSpec
from gemb2.model.profile import Profile, load_profile
from gemb2.testing.emulator import api_errors
from gemb2.testing.emulator.api_errors import ApiError, Drop, lookup_model
from gemb2.testing.emulator.batch_api import BatchApi
from gemb2.testing.emulator.config import ANSWER_FAULTS, EmulatorConfig
from gemb2.testing.emulator.contents import Item, MediaCache, VectorCache, parse_item
from gemb2.testing.emulator.faults import Fault, FaultDrawer, RateLimiter, malformed_answer
from gemb2.testing.emulator.stats import EmulatorStats
from gemb2.testing.emulator.vectors import Vector, space_of

log = logging.getLogger(__name__)

try:  # orjson (a chromadb dependency) writes numpy arrays ~20x faster than json
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - exercised only without orjson

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, default=lambda a: a.tolist(), separators=(",", ":")).encode()


API_VERSIONS = ("v1", "v1beta", "v1alpha", "v1beta1")
EMBED_METHODS = ("embedContent", "batchEmbedContents")
MAX_BODY_BYTES = 1 << 30
_ROUTE = re.compile(
    r"^/(?P<ver>v1|v1beta|v1alpha|v1beta1)/"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?:publishers/(?P<publisher>[^/]+)/)?"
    r"models/(?P<model>[^/:]+)(?::(?P<method>[A-Za-z]+))?$"
)
_LIST = re.compile(r"^/(?P<ver>v1|v1beta|v1alpha|v1beta1)/(?:publishers/[^/]+/)?models$")
_KEY_IN_QUERY = re.compile(r"(?i)([?&](?:key|api_key|access_token)=)[^&\s]*")


# service facts that are also knobs: the profile's value unless the config sets one
_PROFILE_KNOBS = {
    "max_batch": "max_requests_per_call",
    "batch_accepts_media": "batch_accepts_media",
}


class EmulatorApp:
    """State and request handling, independent of the socket plumbing.

    ``profile`` holds the service's facts it serves (limits, normalisation, what
    ``taskType`` and prefixes change, Batch Mode's media, error texts) for its model;
    other models keep the catalog's."""

    def __init__(self, config: EmulatorConfig, profile: Profile | None = None) -> None:
        self.profile = profile = profile or load_profile()
        unset = {
            knob: getattr(profile, fact)
            for knob, fact in _PROFILE_KNOBS.items()
            if knob not in config.model_fields_set
        }
        self.config = config.model_copy(update=unset) if unset else config
        self.stats = EmulatorStats()
        self.limiter = RateLimiter(config.rate_limit_rpm, config.rate_limit_window)
        self.drawer = FaultDrawer(config.seed)
        self.media = MediaCache()
        self.vectors = VectorCache()
        self.stopping = threading.Event()
        self._config_lock = threading.Lock()
        self._since_configure = 0  # embedding requests since the last configure (fail_first)
        self.batch = BatchApi(self)  # Batch Mode and Files API routes

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Swap in a validated config, reseed the fault draws, reset the rate window if changed."""
        with self._config_lock:
            new = EmulatorConfig.model_validate({**self.config.model_dump(), **changes})
            self.config = new
            self._since_configure = 0
            self.drawer.reseed(new.seed)
            if "rate_limit_rpm" in changes or "rate_limit_window" in changes:
                self.limiter.set_rpm(new.rate_limit_rpm, new.rate_limit_window)
            return new

    def spec(self, model: str, ver: str, method: str) -> ModelSpec:
        """The model a route names with the profile's limits, or the profile's 404."""
        spec = lookup_model(model, ver, method, self.profile.errors.model_not_found)
        if spec.id == self.profile.model and spec.limits != self.profile.limits:
            spec = dataclasses.replace(spec, limits=self.profile.limits)
        return spec

    def sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server stops."""
        if seconds > 0:
            self.stopping.wait(seconds)

    # --- routes -----------------------------------------------------------------------------

    def handle_get(self, path: str) -> tuple[int, Any]:
        m = _ROUTE.match(path)
        if m and not m.group("method"):
            spec = self.spec(m.group("model"), m.group("ver"), "get")
            return 200, _model_info(spec)
        if _LIST.match(path):
            specs = [self.spec(s.id, "v1beta", "get") for s in MODELS.values()]
            return 200, {"models": [_model_info(s) for s in specs]}
        raise api_errors.not_found(f"no route for GET {path}")

    def handle_post(self, path: str, raw: bytes, api_key: str | None = None) -> tuple[int, Any]:
        """An embedding call; ``api_key`` is the key the request carried (header or query)."""
        try:
            return self._handle_post(path, raw, api_key)
        except ApiError as exc:
            if api_key and self.config.echo_api_key:  # as some proxies do
                exc.message = f"{exc.message} (request sent with key {api_key})"
            raise

    def _handle_post(self, path: str, raw: bytes, api_key: str | None) -> tuple[int, Any]:
        m = _ROUTE.match(path)
        if not m or m.group("method") not in EMBED_METHODS:
            raise api_errors.not_found(
                f"no route for POST {path}; the emulator serves "
                f"models/{{model}}:embedContent and :batchEmbedContents"
            )
        # the latency model is the whole service time: the emulator's own work counts in it
        started = time.monotonic()
        body, parse_error = _parse_json(raw)
        self.stats.count_request(body, len(raw))
        cfg = self.config
        if cfg.reject_api_key:
            raise _key_not_valid(api_key, self.profile.errors.api_key_invalid)
        answer_fault = self._faults(cfg)
        if parse_error is not None:
            self.sleep(cfg.latency_per_request)
            raise api_errors.invalid(parse_error)
        assert body is not None
        ver, method = m.group("ver"), m.group("method")
        vertex = m.group("project") is not None or m.group("publisher") is not None
        spec = self.spec(m.group("model"), ver, method)
        if method == "batchEmbedContents":
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise api_errors.invalid("requests must be a non-empty list")
            if len(requests) > cfg.max_batch:
                text = self.profile.errors.too_many_requests
                raise api_errors.invalid(text.format(max=cfg.max_batch, got=len(requests)))
            for i, r in enumerate(requests):
                _check_request_model(i, r, spec)
        else:
            requests = [body]
        items = [
            parse_item(i, r, spec, cfg.dimensions_default, self.media, self.profile)
            for i, r in enumerate(requests)
        ]
        space = space_of(spec.id)
        vectors = [self.vectors.values(it, space) for it in items]
        self.stats.count_items(
            len(items), [it.task for it in items if it.task], [it.dims for it in items]
        )
        # written inside the time too
        if answer_fault is not None:
            answer = malformed_answer(answer_fault.kind, _answer(method, vertex, items, vectors))
        else:
            answer = _dumps(_answer(method, vertex, items, vectors))
        service = cfg.latency_per_request + cfg.latency_per_item * len(items)
        self.sleep(service - (time.monotonic() - started))
        return 200, answer

    def _faults(self, cfg: EmulatorConfig) -> Fault | None:
        """Raise the fault drawn for this request, or return it when it is a malformed
        answer (the caller answers 200 with a bad body), or return None."""
        wait = self.limiter.acquire()
        if wait is not None:
            self.stats.count_fault("rate_limit")
            raise api_errors.resource_exhausted(
                wait if cfg.retry_info else None,
                f"Resource has been exhausted: the emulator's limit of "
                f"{cfg.rate_limit_rpm:g} requests per minute was reached.",
            )
        with self._config_lock:
            nth = self._since_configure
            self._since_configure += 1
        fault = self.drawer.draw(cfg.fault_rate, cfg.faults, cfg.retry_delay)
        if fault is None or (cfg.fail_first is not None and nth >= cfg.fail_first):
            return None
        self.stats.count_fault(fault.kind)
        if fault.kind in ANSWER_FAULTS:
            return fault
        if fault.kind == "429":
            raise api_errors.resource_exhausted(
                fault.retry_delay if cfg.retry_info else None,
                self.profile.errors.resource_exhausted,
            )
        if fault.kind == "500":
            raise api_errors.internal(self.profile.errors.internal)
        if fault.kind == "503":
            raise api_errors.unavailable(self.profile.errors.unavailable)
        if fault.kind == "drop":
            raise Drop()
        if fault.kind == "slow":
            self.sleep(cfg.slow_seconds)
        return None


def _key_not_valid(api_key: str | None, text: str) -> ApiError:
    """Google's answer to a key it refuses, echoing the key as the message does."""
    return ApiError(
        403,
        f"{text} (key: {api_key or 'none'})",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com", "key": api_key},
            }
        ],
    )


def _parse_json(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"Invalid JSON payload received. {exc}"
    if not isinstance(body, dict):
        return None, "Invalid JSON payload received. Expected an object."
    return body, None


def _bare_model(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _check_request_model(i: int, request: Any, spec: ModelSpec) -> None:
    if not isinstance(request, dict):
        raise api_errors.invalid(f"request {i}: must be an object")
    model = request.get("model")
    if model is not None and _bare_model(str(model)) != spec.id:
        raise api_errors.invalid(
            f"request {i}: model {model!r} does not match the model in the URL (models/{spec.id})"
        )


def _usage(items: list[Item]) -> dict[str, Any]:
    per: dict[str, int] = {}
    for it in items:
        for k, v in it.tokens.items():
            per[k] = per.get(k, 0) + v
    total = sum(per.values())
    return {
        "promptTokenCount": total,
        "totalTokenCount": total,
        "promptTokensDetails": [{"modality": k, "tokenCount": v} for k, v in sorted(per.items())],
    }


def _answer(method: str, vertex: bool, items: list[Item], vectors: list[Vector]) -> dict[str, Any]:
    if method == "embedContent":
        out: dict[str, Any] = {"embedding": {"values": vectors[0]}}
        if vertex:
            out["usageMetadata"] = _usage(items)
            out["truncated"] = items[0].truncated
        return out
    out = {"embeddings": [{"values": v} for v in vectors]}
    if vertex:
        out["usageMetadata"] = _usage(items)
    return out


def _model_info(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": f"models/{spec.id}",
        "displayName": f"{spec.id} (gemb2 emulator stand-in)",
        "description": spec.note,
        "inputTokenLimit": spec.limits.max_tokens,
        "outputTokenLimit": 1,
        "supportedGenerationMethods": ["embedContent", "batchEmbedContents"],
    }


def redact(text: str) -> str:
    """Never let a key reach a log line."""
    return _KEY_IN_QUERY.sub(r"\1<redacted>", text)


# --- socket plumbing ----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new connections
    # (a client opening 16 at once while the accept thread waits for the GIL), which then
    # time out connecting; Google's front ends take such a burst
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections so a stopped emulator answers nothing more."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gemb2-emulator"
    timeout = 300  # idle keep-alive connections are closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), redact(format % args))

    def do_GET(self) -> None:
        if self._batch_route(b""):
            return
        self._serve(lambda path: self.server.app.handle_get(path))

    def do_POST(self) -> None:
        try:
            raw = self._read_body()
        except ApiError as exc:
            self.close_connection = True
            self._send(exc.code, exc.body())
            return
        if self._batch_route(raw):
            return
        key: str | None = self.headers.get("x-goog-api-key")
        if key is None:
            key = next(iter(parse_qs(urlsplit(self.path).query).get("key", [])), None)
        self._serve(lambda path: self.server.app.handle_post(path, raw, key))

    def do_DELETE(self) -> None:
        if not self._batch_route(b""):
            err = api_errors.not_found(f"no route for DELETE {urlsplit(self.path).path}")
            self._send(err.code, err.body())

    def _batch_route(self, raw: bytes) -> bool:
        """Batch Mode and Files API routes (batch_api.py); False when the path is not one."""
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        try:
            reply = self.server.app.batch.route(self.command, self.path, self.headers, raw, host)
        except Drop:
            self.close_connection = True
            return True
        except ApiError as exc:
            self._send(exc.code, exc.body())
            return True
        except Exception:
            log.exception("emulator failed on %s %s", self.command, redact(self.path))
            err = api_errors.internal()
            self._send(err.code, err.body())
            return True
        if reply is None:
            return False
        data = reply.payload()
        try:
            self.send_response(reply.code)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return True

    def _serve(self, handler: Callable[[str], tuple[int, Any]]) -> None:
        path = urlsplit(self.path).path
        try:
            code, body = handler(path)
        except Drop:
            self.close_connection = True
            return
        except ApiError as exc:
            code, body = exc.code, exc.body()
        except Exception:
            log.exception("emulator failed on %s %s", self.command, path)
            exc2 = api_errors.internal()
            code, body = exc2.code, exc2.body()
        self._send(code, body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise ApiError(413, "Request payload size exceeds the limit.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(413, "Request payload size exceeds the limit.")
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else _dumps(body)
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Emulator:
    """A local stand-in for the Gemini API's embedding endpoints, on a background thread.

    ``with Emulator(port=0) as emu: ... emu.base_url`` - port 0 picks a free port.
    ``profile`` (a ``Profile``, a bundled profile's name or a JSON/TOML file) sets the
    service facts it serves; the default is gemb2's defaults.
    """

    def __init__(
        self,
        port: int = 0,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        profile: Profile | str | Path | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._app = EmulatorApp(config or EmulatorConfig(), load_profile(profile))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> EmulatorConfig:
        return self._app.config

    @property
    def stats(self) -> EmulatorStats:
        return self._app.stats

    @property
    def profile(self) -> Profile:
        """The service facts served (read-only: start another emulator for others)."""
        return self._app.profile

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() or use `with`")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change knobs while running (thread-safe); restarts the seeded fault draws."""
        return self._app.configure(**changes)

    @property
    def batch(self) -> BatchApi:
        """Batch Mode and Files API state: ``.jobs``, ``.files`` and ``.stats``."""
        return self._app.batch

    def reset_stats(self) -> None:
        self._app.stats.reset()
        self._app.batch.reset_stats()

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._app.stopping.clear()
        self._server = _Server((self.host, self._port), self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"gemb2-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._app.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"Emulator({where})"


@contextlib.contextmanager
def emulator_unless(live: bool) -> Iterator[str | None]:
    """For scripts and examples: a private emulator's base URL, or None to call Google.

    Says plainly on stderr that its vectors are stand-ins."""
    if live:
        yield None
        return
    with Emulator(port=0) as emu:
        print(
            f"offline: using the gemb2 emulator at {emu.base_url}; its vectors are "
            "deterministic stand-ins, not Gemini's (pass --live with GOOGLE_API_KEY set)",
            file=sys.stderr,
        )
        yield emu.base_url
