"""Batch Mode and the Files API, as the unmodified ``google-genai`` SDK calls them.

Routes (any API version prefix):

* ``POST models/{m}:asyncBatchEmbedContent`` - create a job from inline requests
  (``inputConfig.requests.requests[].request``) or an uploaded JSONL file
  (``inputConfig.file_name``: one ``{"key", "request"}`` per line);
* ``GET batches/{id}``, ``GET batches``, ``POST batches/{id}:cancel``, ``DELETE batches/{id}``;
* ``POST upload/{v}/files`` - the resumable upload protocol (``X-Goog-Upload-*`` headers:
  ``start`` answers with ``x-goog-upload-url``; ``upload, finalize`` stores the bytes);
* ``GET files/{id}``, ``GET files/{id}:download?alt=media``, ``DELETE files/{id}``.

A job moves PENDING -> RUNNING -> SUCCEEDED over ``batch_delay`` seconds. Its vectors are
computed by the same functions as the online routes, so a request embedded in a batch
gets exactly the vector it would get from ``:batchEmbedContents``. Per-item failures
(``batch_fail_indices``, ``batch_fail_keys``, ``batch_fail_every``, and media when
``batch_accepts_media`` is off) come back as a ``google.rpc.Status`` on that item only.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from gemb2.testing.emulator import api_errors
from gemb2.testing.emulator.api_errors import ApiError, Drop
from gemb2.testing.emulator.contents import parse_item
from gemb2.testing.emulator.vectors import space_of

if TYPE_CHECKING:
    from gemb2.testing.emulator.server import EmulatorApp

try:  # orjson (a chromadb dependency) writes numpy arrays directly
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - exercised only without orjson

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, default=lambda a: a.tolist(), separators=(",", ":")).encode()


_VER = r"(?:v1|v1beta|v1alpha|v1beta1)"
_CREATE = re.compile(rf"^/{_VER}/models/(?P<model>[^/:]+):asyncBatchEmbedContent$")
_BATCH = re.compile(rf"^/{_VER}/batches/(?P<id>[^/:]+)(?::(?P<method>[A-Za-z]+))?$")
_BATCHES = re.compile(rf"^/{_VER}/batches$")
_UPLOAD = re.compile(rf"^/upload/(?:{_VER}/)?files$")
_FILE = re.compile(rf"^/{_VER}/files/(?P<id>[^/:]+)(?::(?P<method>[A-Za-z]+))?$")

# google.rpc.Code values, as a Status inside a batch answer carries them
GRPC_INVALID_ARGUMENT = 3
GRPC_INTERNAL = 13
STATE_PREFIX = "BATCH_STATE_"
_META_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch"


@dataclass
class Reply:
    """One answer: a JSON body (or raw bytes) plus extra headers."""

    code: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        return self.raw if self.raw is not None else _dumps(self.body if self.body else {})


@dataclass
class StoredFile:
    name: str
    mime_type: str
    data: bytes
    display_name: str | None
    source: str  # "UPLOADED" or "GENERATED"
    created: datetime


@dataclass
class Upload:
    """A resumable upload in progress."""

    mime_type: str
    size: int
    display_name: str | None
    name: str | None
    chunks: list[bytes] = field(default_factory=list)
    received: int = 0


@dataclass
class Job:
    name: str
    model: str
    display_name: str
    created: datetime
    started: float
    delay: float
    requests: list[dict[str, Any]]
    keys: list[str] | None  # per line for a file job, None for inline
    fail_indices: frozenset[int]
    fail_keys: frozenset[str]
    fail_every: int | None
    accepts_media: bool
    final_state: str
    state: str = "PENDING"
    count: int = 0
    output: dict[str, Any] | None = None
    stats: dict[str, int] = field(default_factory=dict)
    ended: datetime | None = None


@dataclass
class BatchStats:
    """What the batch routes saw; tests read it."""

    created: int = 0
    items: int = 0
    gets: int = 0
    uploads: int = 0
    downloads: int = 0
    last_create_body: dict[str, Any] | None = None

    def reset(self) -> None:
        self.created = self.items = self.gets = self.uploads = self.downloads = 0
        self.last_create_body = None


class BatchApi:
    """State of the emulated batch jobs and files; one per emulator."""

    def __init__(self, app: EmulatorApp) -> None:
        self.app = app
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, StoredFile] = {}
        self.stats = BatchStats()
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.RLock()

    def reset_stats(self) -> None:
        with self._lock:
            self.stats.reset()

    # --- dispatch -------------------------------------------------------------------------

    def route(self, method: str, target: str, headers: Any, raw: bytes, host: str) -> Reply | None:
        """The answer for a batch or Files API route, or None when the path is not one."""
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if method == "POST" and (m := _CREATE.match(path)):
            return self._create(m.group("model"), raw)
        if method == "POST" and _UPLOAD.match(path):
            return self._upload(headers, query, raw, host, path)
        if (m := _BATCH.match(path)) is not None:
            return self._batch(method, m.group("id"), m.group("method"))
        if method == "GET" and _BATCHES.match(path):
            return self._list()
        if (m := _FILE.match(path)) is not None:
            return self._file(method, m.group("id"), m.group("method"), host)
        return None

    # --- batches --------------------------------------------------------------------------

    def _create(self, model: str, raw: bytes) -> Reply:
        cfg = self.app.config
        dropped = False
        try:
            self.app._faults(cfg)
        except Drop:
            dropped = True  # the job is made but its answer is lost: clients must not pay twice
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise api_errors.invalid(f"Invalid JSON payload received. {exc}") from None
        spec = self.app.spec(model, "v1beta", "asyncBatchEmbedContent")
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            raise api_errors.invalid("batch is required")
        config = batch.get("inputConfig") or batch.get("input_config")
        if not isinstance(config, dict):
            raise api_errors.invalid("batch.inputConfig is required")
        file_name = config.get("fileName") or config.get("file_name")
        inline = config.get("requests")
        if (file_name is None) == (inline is None):
            raise api_errors.invalid("batch.inputConfig needs exactly one of requests or file_name")
        keys: list[str] | None = None
        if inline is not None:
            entries = inline.get("requests") if isinstance(inline, dict) else None
            if not isinstance(entries, list) or not entries:
                raise api_errors.invalid("batch.inputConfig.requests.requests must be non-empty")
            requests = [_unwrap(i, e) for i, e in enumerate(entries)]
        else:
            keys, requests = self._read_input_file(str(file_name))
        if not cfg.batch_accepts_media and cfg.batch_media_refusal == "job":
            media = [i for i, r in enumerate(requests) if _has_media(r)]
            if media:
                raise api_errors.invalid(
                    f"Batch Mode does not accept media parts for models/{spec.id}: "
                    f"requests {media[:10]} hold media; only text can be embedded in a batch job"
                )
        with self._lock:
            self.stats.created += 1
            self.stats.last_create_body = _shrink(body)
            name = f"batches/{secrets.token_hex(8)}"
            job = Job(
                name=name,
                model=f"models/{spec.id}",
                display_name=str(batch.get("displayName") or batch.get("display_name") or name),
                created=_now(),
                started=time.monotonic(),
                delay=cfg.batch_delay,
                requests=requests,
                keys=keys,
                fail_indices=frozenset(cfg.batch_fail_indices),
                fail_keys=frozenset(cfg.batch_fail_keys),
                fail_every=cfg.batch_fail_every,
                accepts_media=cfg.batch_accepts_media,
                final_state=cfg.batch_final_state,
                count=len(requests),
            )
            self.jobs[name] = job
            if dropped:
                raise Drop()
            return Reply(body=self._view(job))

    def _read_input_file(self, file_name: str) -> tuple[list[str], list[dict[str, Any]]]:
        name = file_name if file_name.startswith("files/") else f"files/{file_name}"
        with self._lock:
            stored = self.files.get(name)
        if stored is None:
            raise api_errors.not_found(f"File {name} not found.")
        keys: list[str] = []
        requests: list[dict[str, Any]] = []
        for n, line in enumerate(stored.data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise api_errors.invalid(f"{name} line {n}: invalid JSON: {exc}") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
                raise api_errors.invalid(f"{name} line {n}: expected {{'key', 'request'}}")
            keys.append(str(entry.get("key", n)))
            requests.append(entry["request"])
        if not requests:
            raise api_errors.invalid(f"{name} holds no requests")
        return keys, requests

    def _batch(self, method: str, job_id: str, verb: str | None) -> Reply:
        name = f"batches/{job_id}"
        if method == "GET" and verb is None:
            self.app._faults(self.app.config)
        with self._lock:
            job = self.jobs.get(name)
            if job is None:
                raise api_errors.not_found(f"Batch {name} not found.")
            if method == "GET" and verb is None:
                self.stats.gets += 1
                return Reply(body=self._view(job))
            if method == "POST" and verb == "cancel":
                self._advance(job)
                if job.state in ("PENDING", "RUNNING"):
                    job.state, job.ended = "CANCELLED", _now()
                return Reply(body={})
            if method == "DELETE" and verb is None:
                del self.jobs[name]
                return Reply(body={})
        raise api_errors.not_found(f"no route for {method} {name}{':' + verb if verb else ''}")

    def _list(self) -> Reply:
        with self._lock:
            return Reply(body={"operations": [self._view(j) for j in self.jobs.values()]})

    def _advance(self, job: Job) -> None:
        """Move a job along its timeline; the first look after the delay computes its output."""
        if job.state not in ("PENDING", "RUNNING"):
            return
        hold = self.app.config.batch_hold
        if hold is not None:
            job.state = hold
            return
        elapsed = time.monotonic() - job.started
        if elapsed < job.delay / 2:
            return
        if elapsed < job.delay:
            job.state = "RUNNING"
            return
        job.ended = _now()
        if job.final_state != "SUCCEEDED":
            job.state = job.final_state
            return
        self._run(job)
        job.state = "SUCCEEDED"

    def _run(self, job: Job) -> None:
        spec = self.app.spec(job.model.removeprefix("models/"), "v1beta", "batchEmbedContents")
        space = space_of(spec.id)
        cfg = self.app.config
        answers: list[dict[str, Any]] = []
        failed = 0
        for i, request in enumerate(job.requests):
            key = job.keys[i] if job.keys is not None else None
            answer: dict[str, Any]
            reason = self._refusal(job, i, key, request)
            if reason is not None:
                answer = {"error": reason}
            else:
                try:
                    item = parse_item(
                        i, request, spec, cfg.dimensions_default, self.app.media, self.app.profile
                    )
                except ApiError as exc:
                    answer = {"error": {"code": GRPC_INVALID_ARGUMENT, "message": exc.message}}
                else:
                    answer = {
                        "response": {
                            "embedding": {"values": self.app.vectors.values(item, space)},
                            "tokenCount": sum(item.tokens.values()),
                        }
                    }
            failed += "error" in answer
            if key is not None:
                answer = {"key": key, **answer}
            answers.append(answer)
        self.stats.items += len(answers)
        job.stats = {"total": len(answers), "failed": failed}
        job.requests = []  # answered: do not hold the inputs (media included) any longer
        if job.keys is None:
            job.output = {"inlinedEmbedContentResponses": {"inlinedResponses": answers}}
            return
        name = f"files/out{secrets.token_hex(8)}"
        data = b"".join(_dumps(a) + b"\n" for a in answers)
        self.files[name] = StoredFile(
            name, "application/jsonl", data, f"{job.display_name} results", "GENERATED", _now()
        )
        job.output = {"responsesFile": name}

    def _refusal(
        self, job: Job, i: int, key: str | None, request: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The configured per-item failure for item ``i``, if any."""
        if not job.accepts_media and _has_media(request):
            return {
                "code": GRPC_INVALID_ARGUMENT,
                "message": f"request {i}: Batch Mode does not accept media parts for "
                f"{job.model}; only text can be embedded in a batch job",
            }
        every = job.fail_every
        if (
            i in job.fail_indices
            or (key is not None and key in job.fail_keys)
            or (every is not None and (i + 1) % every == 0)
        ):
            return {
                "code": GRPC_INTERNAL,
                "message": f"request {i}: An internal error has occurred (injected failure)",
            }
        return None

    def _view(self, job: Job) -> dict[str, Any]:
        """The job as the service shows it: a long-running operation with the batch as metadata."""
        self._advance(job)
        total = job.count
        done = job.state not in ("PENDING", "RUNNING")
        failed = job.stats.get("failed", 0)
        stats = {
            "requestCount": str(total),
            "successfulRequestCount": str(total - failed if job.output else 0),
            "failedRequestCount": str(failed),
            "pendingRequestCount": str(0 if done else total),
        }
        meta: dict[str, Any] = {
            "@type": _META_TYPE,
            "name": job.name,
            "model": job.model,
            "displayName": job.display_name,
            "state": STATE_PREFIX + job.state,
            "createTime": _iso(job.created),
            "updateTime": _iso(job.ended or job.created),
            "batchStats": stats,
        }
        if job.ended is not None:
            meta["endTime"] = _iso(job.ended)
        if job.output is not None:
            meta["output"] = job.output
        view: dict[str, Any] = {"name": job.name, "metadata": meta, "done": done}
        if job.output is not None:
            view["response"] = {"@type": _META_TYPE.replace("Batch", "BatchOutput"), **job.output}
        elif done and job.state != "SUCCEEDED":
            view["error"] = {
                "code": GRPC_INTERNAL,
                "message": f"batch {job.name} ended in state {job.state}",
            }
        return view

    # --- files ----------------------------------------------------------------------------

    def _upload(
        self, headers: Any, query: dict[str, list[str]], raw: bytes, host: str, path: str
    ) -> Reply:
        command = (headers.get("X-Goog-Upload-Command") or "").lower()
        if "start" in command:
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise api_errors.invalid(f"Invalid JSON payload received. {exc}") from None
            meta = body.get("file") or {} if isinstance(body, dict) else {}
            size = int(
                headers.get("X-Goog-Upload-Header-Content-Length") or meta.get("sizeBytes") or 0
            )
            mime = headers.get("X-Goog-Upload-Header-Content-Type") or meta.get("mimeType")
            if not mime:
                raise api_errors.invalid("the upload's mime type is required")
            upload_id = secrets.token_hex(12)
            with self._lock:
                self._uploads[upload_id] = Upload(
                    mime_type=str(mime),
                    size=size,
                    display_name=meta.get("displayName"),
                    name=meta.get("name"),
                )
            url = f"http://{host}{path}?upload_id={upload_id}&upload_protocol=resumable"
            return Reply(
                body={},
                headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"},
            )
        upload_id = (query.get("upload_id") or [""])[0]
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise api_errors.not_found("no such upload session")
            offset = int(headers.get("X-Goog-Upload-Offset") or 0)
            if offset != upload.received:
                raise api_errors.invalid(
                    f"upload offset {offset} does not match the {upload.received} bytes received"
                )
            upload.chunks.append(raw)
            upload.received += len(raw)
            if "finalize" not in command:
                return Reply(body={}, headers={"X-Goog-Upload-Status": "active"})
            del self._uploads[upload_id]
            data = b"".join(upload.chunks)
            if upload.size and len(data) != upload.size:
                raise api_errors.invalid(
                    f"uploaded {len(data)} bytes but the upload announced {upload.size}"
                )
            name = upload.name or f"files/{secrets.token_hex(8)}"
            stored = StoredFile(
                name, upload.mime_type, data, upload.display_name, "UPLOADED", _now()
            )
            self.files[name] = stored
            self.stats.uploads += 1
        return Reply(
            body={"file": _file_view(stored, host)}, headers={"X-Goog-Upload-Status": "final"}
        )

    def _file(self, method: str, file_id: str, verb: str | None, host: str) -> Reply:
        name = f"files/{file_id}"
        with self._lock:
            stored = self.files.get(name)
            if stored is None:
                raise api_errors.not_found(f"File {name} not found.")
            if method == "GET" and verb is None:
                return Reply(body=_file_view(stored, host))
            if method == "GET" and verb == "download":
                if stored.source != "GENERATED":
                    raise ApiError(
                        403, f"File {name} was uploaded; only generated files can be downloaded."
                    )
                self.stats.downloads += 1
                return Reply(raw=stored.data, content_type=stored.mime_type)
            if method == "DELETE" and verb is None:
                del self.files[name]
                return Reply(body={})
        raise api_errors.not_found(f"no route for {method} {name}")


def _unwrap(i: int, entry: Any) -> dict[str, Any]:
    """``{"request": {...}}`` of an inline entry (a bare request is accepted too)."""
    if not isinstance(entry, dict):
        raise api_errors.invalid(f"requests[{i}] must be an object")
    inner = entry.get("request", entry)
    if not isinstance(inner, dict):
        raise api_errors.invalid(f"requests[{i}].request must be an object")
    return inner


def _has_media(request: dict[str, Any]) -> bool:
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return any(
        isinstance(p, dict)
        and any(k in p for k in ("inline_data", "inlineData", "file_data", "fileData"))
        for p in parts or []
    )


def _file_view(f: StoredFile, host: str) -> dict[str, Any]:
    file_id = f.name.split("/", 1)[1]
    view = {
        "name": f.name,
        "mimeType": f.mime_type,
        "sizeBytes": str(len(f.data)),
        "createTime": _iso(f.created),
        "updateTime": _iso(f.created),
        "expirationTime": _iso(f.created + timedelta(hours=48)),
        "sha256Hash": hashlib.sha256(f.data).hexdigest(),
        "uri": f"http://{host}/v1beta/{f.name}",
        "state": "ACTIVE",
        "source": f.source,
    }
    if f.display_name:
        view["displayName"] = f.display_name
    if f.source == "GENERATED":
        view["downloadUri"] = f"http://{host}/v1beta/files/{file_id}:download?alt=media"
    return view


def _shrink(body: Any) -> Any:
    from gemb2.testing.emulator.stats import _shrink as shrink

    return shrink(body)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
