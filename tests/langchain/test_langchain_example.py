"""examples/langchain_quickstart.py runs offline and a text query ranks the picture first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "langchain_quickstart.py"


def test_quickstart_runs_offline_and_finds_the_image() -> None:
    env = {"PATH": ""}  # no key in the environment: it must not need one
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "a red circle"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "query: 'a red circle'"
    assert lines[1].startswith("1. red_circle.png")
    ranked = [line.split()[1] for line in lines[1:6]]
    assert sorted(ranked) == sorted(
        ["red_circle.png", "blue_square.png", "waves.mp4", "recipe.txt", "guitar.txt"]
    )
    assert "similar to blue_square.png:" in lines
    assert lines[lines.index("similar to blue_square.png:") + 1] == "1. blue_square.png"
    assert "7 items embedded" in done.stdout
