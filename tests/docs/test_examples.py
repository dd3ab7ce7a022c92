"""Every ```python block of the docs and the README runs as a reader would copy it.

The blocks of one page share a namespace and run in order (a page's first block sets up
what the rest use, visibly); each runs in a fresh working directory, offline: the setup a
block needs (an emulator, sample files) is in the page itself. Other fences (bash,
console, text, toml, plain) are not run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.client import SharedSystemClient
from mktestdocs import grab_code_blocks

from gemb2.testing.emulator import Emulator

ROOT = Path(__file__).parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def run_page(text: str, name: str) -> dict[str, Any]:
    """Run a page's python blocks in order in one namespace; a failure names its block."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        for number, block in enumerate(grab_code_blocks(text, lang="python"), start=1):
            code = compile(block, f"{name} python block {number}", "exec")
            exec(code, namespace)
    finally:  # a page's emulators stop with it
        for value in namespace.values():
            if isinstance(value, Emulator) and value.running:
                value.stop()
    return namespace


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_block_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.set_event_loop(None)  # a block that needs a loop makes its own (asyncio.run)
    # Chroma keeps one client per path *string*: "./db" of the last page is another folder
    SharedSystemClient.clear_system_cache()
    try:
        run_page(page.read_text(), str(page.relative_to(ROOT)))
    finally:
        SharedSystemClient.clear_system_cache()


def test_a_failing_block_fails_its_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    page = (
        "text\n\n```python\nx = 1\n```\n\n```bash\nexit 1\n```\n\n```python\nassert x == 2\n```\n"
    )
    with pytest.raises(AssertionError) as failed:
        run_page(page, "broken.md")
    assert failed.traceback[-1].path == "broken.md python block 2"


def test_blocks_of_a_page_share_one_namespace_in_order() -> None:
    page = "```python\nx = [1]\n```\n\n```text\nx.append(9)\n```\n\n```python\nx.append(2)\n```\n"
    assert run_page(page, "shared.md")["x"] == [1, 2]
