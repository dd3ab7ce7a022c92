"""The docs site builds with ``mkdocs build --strict`` (any warning fails it), and its API
reference covers every name the public ``__all__`` lists."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# module -> the reference page that documents it (docs/reference/<page>.md)
REFERENCE = {
    "gemb2": "gemb2",
    "gemb2.testing": "testing",
    "gemb2.segment": "testing",
    "langchain_gemb2": "langchain",
    "llamaindex_gemb2": "llamaindex",
    "haystack_gemb2": "haystack",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=240,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "WARNING" not in build.stderr, build.stderr
    return out


def test_the_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    for page in ("langchain", "llamaindex", "haystack", "chroma"):
        assert (site / page / "index.html").is_file(), page


@pytest.mark.parametrize("module_name", REFERENCE)
def test_the_api_reference_lists_every_public_name(site: Path, module_name: str) -> None:
    html = (site / "reference" / REFERENCE[module_name] / "index.html").read_text()
    listed = importlib.import_module(module_name).__all__
    missing = [n for n in listed if n != "__version__" and f'id="{module_name}.{n}"' not in html]
    assert missing == []


def test_every_page_is_in_the_nav() -> None:
    """A page left out of ``nav:`` is a strict-mode warning; this names it directly."""
    config = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert [p for p in pages if f" {p}" not in config] == []
