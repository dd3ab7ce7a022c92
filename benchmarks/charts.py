"""Draws the benchmark comparisons as SVG charts for the docs, from a run's JSON.

    .venv/bin/python benchmarks/charts.py [RUN.json ...] [--out docs/img]

Reads only the JSON that ``run.py`` wrote, so the charts can be redrawn without running
the benchmarks again. The SVGs carry no date, no matplotlib version and a fixed id salt: redrawing
the same JSON gives the same bytes, so a diff shows only what the numbers changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "benchmarks.json"
# the full run, then the Matryoshka run that swept the oversample (its recall curve)
DEFAULT_JSONS = [DEFAULT_JSON, HERE / "results" / "matryoshka" / "benchmarks.json"]
DEFAULT_OUT = HERE.parent / "docs" / "img"
# chart file -> what it shows (the docs embed them by these names)
CHARTS = {
    "throughput-text.svg": "items/s per integration vs the ceilings, 5,000 texts",
    "throughput-media.svg": "items/s per integration vs the ceilings, mixed media",
    "matryoshka-recall.svg": "Matryoshka recall@10 vs oversample",
}
GEMB2, OTHER, REFERENCE, WRONG = "#1a73e8", "#9aa0a6", "#5f6368", "#d93025"


def _plain(label: str) -> str:
    """A row's label without markdown backticks."""
    return label.replace("`", "")


def _axes(height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"svg.hashsalt": "gemb2-benchmarks", "svg.fonttype": "none", "font.size": 9}
    )
    return plt.subplots(figsize=(9, height))


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def throughput(case: dict[str, Any], title: str, path: Path) -> None:
    """Horizontal bars, fastest try of each row, with the network ceiling and the
    plain-SDK CPU bound as lines; rows that cannot embed or gave wrong output say so."""
    rows = list(reversed(case["rows"]))  # matplotlib draws the first bar at the bottom
    fig, ax = _axes(0.42 * len(rows) + 1.4)
    ceiling = case["ceiling"]["items_per_s"]
    cpu = case.get("cpu_ceiling_items_per_s")
    top = max([ceiling, cpu or 0] + [r.get("items_per_s") or 0 for r in rows]) * 1.18
    for y, r in enumerate(rows):
        label, rate, status = _plain(r["label"]), r.get("items_per_s"), r.get("status")
        colour = (
            GEMB2
            if label.startswith("gemb2")
            else REFERENCE
            if label.startswith("reference")
            else OTHER
        )
        if status == "cannot" or not rate:
            ax.text(
                top * 0.01,
                y,
                _plain(f"{status}: {r.get('note', '')}")[:95],
                va="center",
                fontsize=7,
            )
            continue
        wrong = status != "ok"
        ax.barh(y, rate, color=WRONG if wrong else colour, hatch="//" if wrong else None)
        note = f"{rate:,.0f}  ({100 * rate / ceiling:.0f}% of ceiling)"
        if wrong:
            note = f"{rate:,.0f}  wrong output: {r.get('note', '').split(' (')[0]}"
        ax.text(rate + top * 0.01, y, note, va="center", fontsize=7)
        others = [t for t in r.get("tries_items_per_s") or [] if t and t != rate]
        ax.plot(others, [y] * len(others), "k|", markersize=9)
    ax.axvline(ceiling, color="black", linestyle="--", linewidth=1)
    ax.text(ceiling, len(rows) + 0.3, f" network ceiling {ceiling:,.0f}", fontsize=7)
    if cpu:
        ax.axvline(cpu, color=REFERENCE, linestyle=":", linewidth=1)
        ax.text(cpu, len(rows) - 0.3, f" plain-SDK CPU bound {cpu:,.0f}", fontsize=7)
    ax.set_yticks(range(len(rows)), [_plain(r["label"]) for r in rows], fontsize=7)
    ax.set_xlim(0, top)
    ax.set_ylim(-0.6, len(rows) + 0.8)
    ax.set_xlabel("items/s (bars: the faster try; |: the other try)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)


def recall_points(m: dict[str, Any]) -> dict[int, float]:
    """recall@10 by oversample: the run's sweep when it has one; else what every run
    measures: the small collection alone (a shortlist of k, re-ranked or not, holds the
    same k ids: oversample 1) and ``MatryoshkaIndex`` at its oversample."""
    sweep = m.get("recall_by_oversample")
    if sweep:
        return {int(k): float(v) for k, v in sweep.items()}
    search = m["search"]
    return {
        1: float(search["head"]["recall_at_10"]),
        int(m["oversample"]): float(search["matryoshka"]["recall_at_10"]),
    }


def matryoshka(m: dict[str, Any], path: Path) -> None:
    points = recall_points(m)
    xs = sorted(points)
    fig, ax = _axes(3.6)
    # a line only through a sweep: two points alone say nothing of the shape between them
    style = "o-" if m.get("recall_by_oversample") else "o"
    ax.plot(xs, [points[x] for x in xs], style, color=GEMB2, label="MatryoshkaIndex")
    for x in xs:
        ax.annotate(
            f"{points[x]:.3f}", (x, points[x]), textcoords="offset points", xytext=(0, -14),
            ha="center", fontsize=7,
        )  # fmt: skip
    full = float(m["search"]["full"]["recall_at_10"])
    ax.axhline(full, color="black", linestyle="--", linewidth=1)
    ax.text(xs[0], full, " Chroma, full 3072-d vectors", ha="left", va="bottom", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xlabel(f"oversample (shortlist of k x this on {m['small_dims']}-d heads, k = 10)")
    ax.set_ylabel("recall@10 vs exact search")
    low = min(points.values())
    ax.set_ylim(max(0.0, low - (1 - low) * 0.6 - 0.01), 1.005)
    ax.set_title(
        f"Matryoshka shortlist-and-rerank, {m['items']:,} items, {m['queries']} queries "
        "(emulator vectors: Matryoshka-shaped stand-ins)",
        fontsize=10,
    )
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)


def render(results: dict[str, Any], out: Path) -> list[Path]:
    """Every chart whose case is in ``results``, as files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    cases = results["cases"]
    done: list[Path] = []
    when = f"{results.get('date', '')}, {results.get('machine', {}).get('cpus', '?')} CPUs"
    for case, name, what in (
        ("text", "throughput-text.svg", "5,000 short texts"),
        ("media", "throughput-media.svg", "200 mixed media items"),
    ):
        if cases.get(case, {}).get("rows"):
            throughput(cases[case], f"Ingestion, {what} ({when})", out / name)
            done.append(out / name)
    m = cases.get("matryoshka")
    if m and m.get("status") == "ok":
        matryoshka(m, out / "matryoshka-recall.svg")
        done.append(out / "matryoshka-recall.svg")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "results", nargs="*", type=Path, default=DEFAULT_JSONS,
        help="runs' JSON; a chart comes from the last run that has its case",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the SVGs go")
    args = p.parse_args(argv)
    for results in args.results:
        for path in render(json.loads(results.read_text()), args.out):
            print(f"wrote {path} from {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
