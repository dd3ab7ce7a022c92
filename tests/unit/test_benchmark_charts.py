"""benchmarks/charts.py draws the docs' charts from a run's JSON, without rerunning it."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = json.loads((ROOT / "benchmarks" / "results" / "benchmarks.json").read_text())


@pytest.fixture(scope="module")
def charts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("charts", ROOT / "benchmarks" / "charts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_json_gives_every_chart_the_docs_embed(
    charts: ModuleType, tmp_path: Path
) -> None:
    written = charts.render(RESULTS, tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(charts.CHARTS) == sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in (ROOT / "docs" / "img").glob("*.svg"))
    assert committed == names  # the docs ship a drawing of each
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in names:
        svg = (tmp_path / name).read_text()
        assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
        assert "Matplotlib v" not in svg and "<dc:date>" not in svg  # redraws stay the same
        assert f"](img/{name})" in docs


def test_the_charts_draw_the_runs_numbers(charts: ModuleType, tmp_path: Path) -> None:
    charts.render(RESULTS, tmp_path)
    text = (tmp_path / "throughput-text.svg").read_text()
    # the core's faster try, its share of the ceiling, the ceiling, a wrong-output row
    assert "1,413  (92% of ceiling)" in text and "network ceiling 1,538" in text
    assert "wrong output: returned 50 vectors for 5000 inputs" in text
    media = (tmp_path / "throughput-media.svg").read_text()
    assert media.count("cannot:") == 3 and "network ceiling 800" in media
    recall = (tmp_path / "matryoshka-recall.svg").read_text()
    assert "0.948" in recall and "1.000" in recall and "100,000 items" in recall


def test_redrawing_the_same_json_gives_the_same_bytes(charts: ModuleType, tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in charts.render(RESULTS, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in charts.render(RESULTS, tmp_path / "b")}
    assert first == second


def test_recall_points_use_a_sweep_when_the_run_has_one(charts: ModuleType) -> None:
    m = copy.deepcopy(RESULTS["cases"]["matryoshka"])
    m.pop("recall_by_oversample", None)
    assert charts.recall_points(m) == {1: pytest.approx(0.948), 4: 1.0}
    m["recall_by_oversample"] = {"1": 0.9, "2": 0.97, "8": 1.0}
    assert charts.recall_points(m) == {1: 0.9, 2: 0.97, 8: 1.0}


def test_a_run_without_a_case_draws_only_the_others(charts: ModuleType, tmp_path: Path) -> None:
    partial = {**RESULTS, "cases": {"text": RESULTS["cases"]["text"]}}
    assert [p.name for p in charts.render(partial, tmp_path)] == ["throughput-text.svg"]
