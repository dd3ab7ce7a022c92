"""A recording HTTP forwarder between a Chroma client and a real ``chroma run`` server.

The client talks to ``proxy.url`` as it would to the server; every request is passed on
unchanged (httpx, one pooled client) and its answer returned unchanged. For each write
(``.../add``, ``.../upsert``) it records the path, the body's size, how many records it
carried, its longest document and URI in UTF-8 bytes, and how many writes were in
flight at once. Two knobs make concurrency and failures testable without timing:
``hold_writes=N`` keeps the first writes waiting until N are in flight together (or
``hold_seconds`` pass, once), so a client that sends in parallel shows it and one that
cannot exceed a bound shows that; ``refuse={k}`` answers the k-th write (1-based, in
arrival order) with a 500 instead of passing it on.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

WRITE_OPS = ("add", "upsert")
_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


@dataclass(frozen=True)
class Write:
    op: str
    path: str
    body_bytes: int
    records: int
    max_document_bytes: int
    max_uri_bytes: int
    in_flight: int  # writes in flight when this one arrived, itself included
    status: int


@dataclass(frozen=True)
class Read:
    limit: int | None  # the `limit` the get asked for (None: all of them)
    ids: int  # ids named (0: a where or the whole collection)
    results: int  # records the server answered


def _utf8_max(values: Any) -> int:
    return max((len(v.encode("utf-8")) for v in values or [] if isinstance(v, str)), default=0)


class RecordingProxy:
    def __init__(
        self,
        upstream: str,
        *,
        hold_writes: int = 0,
        hold_seconds: float = 10.0,
        refuse: set[int] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_writes = hold_writes
        self.hold_seconds = hold_seconds
        self.refuse = set(refuse or ())
        self.writes: list[Write] = []
        self.reads: list[Read] = []  # each .../get, in arrival order
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.max_in_flight = 0
        self._in_flight = 0
        self._arrived = 0
        self._held_done = hold_writes <= 1
        self._cond = threading.Condition()
        self._http = httpx.Client(
            base_url=self.upstream,
            timeout=120,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def reset(self, *, hold_writes: int = 0, refuse: set[int] | None = None) -> None:
        with self._cond:
            self.writes.clear()
            self.reads.clear()
            self.requests.clear()
            self.max_in_flight = self._arrived = 0
            self.hold_writes = hold_writes
            self._held_done = hold_writes <= 1
            self.refuse = set(refuse or ())

    # ---------------------------------------------------------------- internals

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self.requests.append((h.command, h.path))
        op = h.path.rstrip("/").rsplit("/", 1)[-1]
        is_write = h.command == "POST" and op in WRITE_OPS and "/collections/" in h.path
        number = in_flight = 0
        if is_write:
            with self._cond:
                self._arrived += 1
                number = self._arrived
                self._in_flight += 1
                in_flight = self._in_flight
                self.max_in_flight = max(self.max_in_flight, in_flight)
                self._cond.notify_all()
                if not self._held_done:
                    # hold until enough writes are in flight together, or the time is up
                    self._cond.wait_for(
                        lambda: self._in_flight >= self.hold_writes or self._held_done,
                        timeout=self.hold_seconds,
                    )
                    self._held_done = True  # once: later writes pass at once
                    self._cond.notify_all()
        status, content = 0, b""
        headers: list[tuple[str, str]] = []
        try:
            if number in self.refuse:
                status, headers, content = self._refused()
            else:
                status, headers, content = self._pass_on(h, body)
        finally:
            if is_write:
                data = json.loads(body or b"{}")
                with self._cond:
                    self.writes.append(
                        Write(
                            op=op,
                            path=h.path,
                            body_bytes=len(body),
                            records=len(data.get("ids") or []),
                            max_document_bytes=_utf8_max(data.get("documents")),
                            max_uri_bytes=_utf8_max(data.get("uris")),
                            in_flight=in_flight,
                            status=status,
                        )
                    )
                    self._in_flight -= 1
        if h.command == "POST" and op == "get" and "/collections/" in h.path and status == 200:
            asked = json.loads(body or b"{}")
            self.reads.append(
                Read(
                    limit=asked.get("limit"),
                    ids=len(asked.get("ids") or []),
                    results=len(json.loads(content).get("ids") or []),
                )
            )
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(content)))
        h.end_headers()
        h.wfile.write(content)

    def _pass_on(
        self, h: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        resp = self._http.request(h.command, h.path, content=body, headers=headers)
        out = [
            (k, v)
            for k, v in resp.headers.items()
            if k.lower() not in _HOP and k.lower() != "content-encoding"
        ]
        return resp.status_code, out, resp.content

    @staticmethod
    def _refused() -> tuple[int, list[tuple[str, str]], bytes]:
        body = json.dumps({"error": "InternalError", "message": "write refused by the test"})
        return 500, [("Content-Type", "application/json")], body.encode()
