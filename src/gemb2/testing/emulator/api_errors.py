"""Errors in the JSON shape Google's APIs use, so clients parse them as they would Google's."""

from __future__ import annotations

from typing import Any

from gemb2.errors import ConfigError
from gemb2.model.catalog import ModelSpec, get_model
from gemb2.model.profile import DEFAULT
from gemb2.testing.emulator.faults import format_seconds

_TEXTS = DEFAULT.errors  # the texts when the caller's profile gives none

STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class Drop(Exception):
    """Close the connection without any answer (a fault kind clients must survive)."""


class ApiError(Exception):
    """An answer other than 200; ``body()`` is exactly what goes on the wire."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = STATUS.get(code, "UNKNOWN")
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def resource_exhausted(delay: float | None, why: str) -> ApiError:
    """A 429 with the delay both in the message and as a google.rpc.RetryInfo detail;
    ``None``: a bare 429 that names no delay."""
    if delay is None:
        return ApiError(429, why)
    text = format_seconds(delay)
    return ApiError(
        429,
        f"{why} Please retry in {text}.",
        details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": text}],
    )


def internal(text: str = _TEXTS.internal) -> ApiError:
    return ApiError(500, text)


def unavailable(text: str = _TEXTS.unavailable) -> ApiError:
    return ApiError(503, text)


def lookup_model(
    model: str, ver: str, method: str, template: str = _TEXTS.model_not_found
) -> ModelSpec:
    """The model a route names, or Google's 404 for it (a retired alias included);
    ``template`` is the profile's text of that 404."""
    try:
        spec = get_model(model)
        if spec.id != model.removeprefix("models/"):  # a retired alias: shut down upstream
            raise ConfigError(model)
        return spec
    except ConfigError:
        raise not_found(template.format(model=model, version=ver, method=method)) from None
