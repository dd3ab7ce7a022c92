"""The framework wrappers are glue: they turn their framework's records into Items and put
vectors back. Reading media, splitting, token budgets and the piece schema live in the
core (``gemb2.inputs``, ``gemb2.segment``, ``gemb2.ingest``), so that a fix there
reaches LangChain, LlamaIndex, Haystack and the CLI at once; a wrapper that reaches
past it keeps a second copy that drifts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
WRAPPERS = ("langchain_gemb2", "llamaindex_gemb2", "haystack_gemb2", "haystack_integrations")

# media libraries: the core reads and cuts media, a wrapper never opens it itself
MEDIA_LIBRARIES = frozenset({"pypdf", "av", "PIL", "filetype"})
# core modules of content logic a wrapper must reach only through gemb2.ingest/gemb2.inputs
CORE_INTERNALS = ("gemb2.segment", "gemb2.inputs.tokens")
# token counting: a budget a wrapper computes is a second copy of the core's
TOKEN_NAMES = frozenset({"PREFIX_TOKENS", "estimate_tokens", "word_count", "utf8_len"})


def _files() -> list[Path]:
    return sorted(p for pkg in WRAPPERS for p in (SRC / pkg).rglob("*.py"))


def _violations(path: Path) -> list[str]:
    """What in one wrapper module is not glue, as ``line: reason``."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        names: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            base = node.module or ""
            modules = [base, *(f"{base}.{a.name}" for a in node.names)]
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        media = [m for m in modules if m.split(".")[0] in MEDIA_LIBRARIES]
        if media:
            out.append(f"{node.lineno}: imports the media library {media[0]}")
        internal = [m for m in modules for c in CORE_INTERNALS if m == c or m.startswith(c + ".")]
        if internal:
            out.append(f"{node.lineno}: imports {internal[0]} (content logic of the core)")
        for name in names:
            if name in TOKEN_NAMES:
                out.append(f"{node.lineno}: uses {name} (token budgets are the core's)")
    return sorted(set(out), key=lambda s: int(s.split(":")[0]))


def test_the_wrappers_are_found() -> None:
    found = {p.relative_to(SRC).parts[0] for p in _files()}
    assert found == set(WRAPPERS)
    assert len(_files()) >= 15


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(SRC)))
def test_wrapper_module_is_glue(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    """The AST check itself: each kind of reach past the core is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import av\n"
        "from PIL import Image\n"
        "import pypdf.errors\n"
        "from gemb2.segment.split import split_text\n"
        "from gemb2.model.tasks import PREFIX_TOKENS\n"
        "from gemb2.inputs import tokens\n"
        "n = tokens.estimate_tokens('x')\n"
        "from gemb2.inputs.detect import media_type\n"  # the core's answer: fine
    )
    got = _violations(bad)
    assert [int(v.split(":")[0]) for v in got] == [1, 2, 3, 4, 5, 6, 7]
    assert "media library av" in got[0] and "PREFIX_TOKENS" in got[4]
    assert "gemb2.inputs.tokens" in got[5] and "estimate_tokens" in got[6]
