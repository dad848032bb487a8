"""A study report: one self-contained HTML page (no server, no network) a researcher can open or share.

``write_report(studies, out_dir)`` writes ``out_dir/index.html`` and, beside it, every figure as a
PNG. The page embeds the figures (``data:`` URIs), so the HTML file alone is the whole report. It
holds the saved spec, trial counts per status and kind, the failures, the comparison tables (the
metric that compares with the paper, then the last epoch's) and every figure that applies: density
when densities vary, update period when update periods vary, learning curves, Jaccard overlaps when
trials recorded them, and the searched parameters for a search.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

import dst_core

from .comparison import (Comparison, compare, default_axes, default_metric, ranking, stopped_note, trial_kinds,
                         varying_axes)
from .plots import plot
from .queries import Studies
from .render import comparison_caption, comparison_tables
from .folder import SPEC
from .store import StoreError, revision, revision_where

__all__ = ["write_report"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0 1.4em; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; } td.tied { background: #f3f7ff; } tr.ref td { color: #666; font-style: italic; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
figure { margin: 1.5em 0; } img { max-width: 100%; } .note { color: #555; }
"""


def _table(header: list[str], body: list[list[str]], caption: str = "", ref_rows: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for row in body:
        cells = []
        for i, text in enumerate(row):
            cls = ' class="best"' if text.endswith("★") else ' class="tied"' if text.endswith("☆") else ""
            cells.append(f"<td{cls if i else ''}>{html.escape(text)}</td>")
        ref = ' class="ref"' if row and row[0] in ref_rows else ""
        rows.append(f"<tr{ref}>{''.join(cells)}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _frame_table(frame: pd.DataFrame) -> str:
    body = [["" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
            for row in frame.itertuples(index=False)]
    return _table([str(c) for c in frame.columns], body)


def _comparison(c: Comparison) -> str:
    parts = [f"<p class='note'>{html.escape(comparison_caption(c))}</p>"]
    for title, header, body, power in comparison_tables(c):
        parts.append(_table(header, body, title, ref_rows=("static", "dense")))
        parts.append(f"<p class='note'>{html.escape(power)}</p>")
    parts += [f"<p class='note'>Note: {html.escape(note)}</p>" for note in c.notes]
    return "\n".join(parts)


def _figures(studies: Studies, trials: pd.DataFrame, metric: str, out_dir: Path, search: bool,
             where: str) -> list[Path]:
    varying = varying_axes(trials)
    kinds = []
    if search:
        kinds.append("search")
    else:
        if "update_period" in varying:  # its panels hold the densities: a density figure would be a wall
            kinds.append("update-period")
        elif "density" in varying:
            kinds.append("density")
    figures = [plot(studies, kind, out_dir / f"{kind}.png", metric, where) for kind in kinds]
    # learning curves at the lowest and highest density and the middle value of every other axis
    # only: a panel per combination would be a wall
    densities = sorted(trials.loc[trials["kind"] != "dense", "density"].unique())
    few = f" and density in [{densities[0]:g}, {densities[-1]:g}, 1.0]" if len(densities) > 2 else ""
    for axis in varying:
        if axis not in ("criterion", "growth", "density") and not search:
            values = sorted(trials.loc[trials["kind"] == "dst", axis].dropna().unique())
            value = values[len(values) // 2]
            value = value.item() if hasattr(value, "item") else value  # a literal of the filter language
            few += f" and ({axis} == {value!r} or {axis} == None)"
    figures.append(plot(studies, "curves", out_dir / "curves.png", metric, where + few))
    if not studies.query("jaccard", columns=["trial_id"]).empty:
        figures.append(plot(studies, "jaccard", out_dir / "jaccard.png", metric, where))
    return figures


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def write_report(studies: Studies, out_dir: str | Path) -> Path:
    """Write the report of ``studies`` (one, or several read as one) to ``out_dir/index.html``,
    the figures beside it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = studies.query("trials")
    if trials.empty:
        raise StoreError(f"{studies.root}: no trials yet; nothing to report")
    trials = trials.assign(kind=trial_kinds(trials))
    row_revision = revision(trials)
    done = trials[(trials["status"] == "completed") & (row_revision == row_revision.max())]
    specs = {Path(s.path).name: s.folder.read_text(SPEC) for s in studies.stores}
    spec = next(iter(specs.values()))
    parsed = yaml.safe_load(spec) if spec else None
    space = list(parsed["search"].get("space", {})) if isinstance(parsed, dict) and parsed.get("search") else None
    search = space is not None
    name = " + ".join(specs)
    sections = [f"<h1>Stud{'ies' if len(specs) > 1 else 'y'} {html.escape(name)}</h1>",
                f"<p class='note'>{html.escape(studies.root)}; report written "
                f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by dst-study {dst_core.__version__} "
                f"(algorithm revision {dst_core.ALGORITHM_REVISION})</p>"]

    counts = trials.pivot_table(index="kind", columns="status", values="trial_id", aggfunc="count", fill_value=0)
    sections += ["<h2>Trials</h2>", _frame_table(counts.reset_index())]
    revisions = row_revision.value_counts().sort_index()
    if len(revisions) > 1 or revisions.index[0] != dst_core.ALGORITHM_REVISION:
        sections.append("<p class='note'>Trials per algorithm revision (results of different revisions are not "
                        "comparable, so the tables and figures below hold revision "
                        f"{revisions.index[-1]} only): " + ", ".join(f"revision {r}: {n}" for r, n in revisions.items())
                        + "</p>")
    sections += [f"<p class='note'>{html.escape(note)}</p>" for note in stopped_note(trials)]
    failed = trials[trials["status"] == "failed"]
    if not failed.empty:
        last_lines = failed["error"].fillna("").map(lambda e: (e.strip().splitlines() or [""])[-1][:300])
        sections += ["<h3>Failures</h3>",
                     _frame_table(failed[["trial_id", "kind", "criterion", "density", "seed"]]
                                  .assign(error=last_lines.values))]

    if not done.empty:
        metric = default_metric(done)
        sections.append("<h2>Comparison</h2>")
        if search:
            sections.append(_frame_table(ranking(done, metric, space).head(50)))
        else:
            rows, cols = default_axes(done)
            for m in dict.fromkeys([metric, "final_test_accuracy"]):
                sections += [f"<h3>{html.escape(m)}</h3>", _comparison(compare(done, m, rows, cols))]
        sections.append("<h2>Figures</h2>")
        where = revision_where(int(row_revision.max()))
        sections += [_img(p) for p in _figures(studies, done, metric, out_dir, search, f"({where})")]
    for study, text in specs.items():
        if text is not None:
            title = "Spec" + (f" of {study}" if len(specs) > 1 else "")
            sections += [f"<h2>{html.escape(title)}</h2>", f"<pre>{html.escape(text)}</pre>"]

    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dst-study: {html.escape(name)}"
            f"</title><style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
