"""Helpers shared by the LlamaIndex tests: read what reached the emulator's wire."""

from __future__ import annotations

import base64
from typing import Any

from gemb2.testing.emulator import Emulator

DIMS = 256
BOOK_PAGES = [f"page {i}: notes on topic number {i}" for i in range(1, 15)]
BOOK_PAGES[8] = "page 9: volcanoes erupt molten lava and ash"  # lands in pages 7-12
VIDEO_DESCRIPTION = "a sailing boat crossing a calm lake"
NOTES = "Honeybees make honey from flower nectar and store it in wax combs."


def sent_contents(emulator: Emulator) -> list[dict[str, Any]]:
    """Every Content the emulator received, in order."""
    out: list[dict[str, Any]] = []
    for body in emulator.stats.last_bodies:
        for req in body.get("requests", []):
            out.append(req["content"])
        if "content" in body:
            out.append(body["content"])
    return out


def part_kind(part: dict[str, Any]) -> str:
    """'text' or the mime type of an inline media part."""
    if "text" in part:
        return "text"
    blob = part.get("inline_data") or part.get("inlineData") or {}
    return str(blob.get("mime_type") or blob.get("mimeType"))


def part_bytes(part: dict[str, Any]) -> bytes:
    blob = part.get("inline_data") or part.get("inlineData") or {}
    return base64.urlsafe_b64decode(blob["data"].replace("+", "-").replace("/", "_"))
