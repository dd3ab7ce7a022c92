"""No module in src/ is over 600 lines: a module a newcomer cannot read in one sitting
is a sign it holds more than one concern (issue 17)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = (
    "gemb2",
    "langchain_gemb2",
    "llamaindex_gemb2",
    "haystack_gemb2",
    "haystack_integrations",
)
MAX_LINES = 600


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _oversized(src: Path, packages: tuple[str, ...]) -> dict[str, int]:
    """Every .py under the packages with more than MAX_LINES lines, by path relative to src."""
    out: dict[str, int] = {}
    for pkg in packages:
        for path in sorted((src / pkg).rglob("*.py")):
            lines = _line_count(path)
            if lines > MAX_LINES:
                out[path.relative_to(src).as_posix()] = lines
    return out


def test_the_walk_sees_every_package() -> None:
    for pkg in PACKAGES:
        assert any((SRC / pkg).rglob("*.py")), f"no modules found under src/{pkg}"


def test_an_oversized_module_is_named(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "small.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "pkg" / "sub" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert _oversized(tmp_path, ("pkg",)) == {"pkg/sub/big.py": MAX_LINES + 1}


def test_no_module_over_600_lines() -> None:
    over = _oversized(SRC, PACKAGES)
    assert over == {}, f"modules over {MAX_LINES} lines (split them by concern):\n" + "\n".join(
        f"  src/{rel}: {n} lines" for rel, n in sorted(over.items())
    )
