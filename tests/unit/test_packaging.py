"""The core stands alone: no framework is imported by gemb2 itself."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, gemb2, gemb2.stores.chroma, gemb2.cli.main, gemb2.stores.matryoshka, gemb2.batch.embedder\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'langchain_core', 'langchain', 'llama_index', 'haystack', 'ray'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_py_typed_shipped() -> None:
    from importlib.resources import files

    for pkg in ("gemb2", "langchain_gemb2", "llamaindex_gemb2", "haystack_gemb2"):
        assert files(pkg).joinpath("py.typed").is_file()
