"""Terminal output of tables: rich tables on a terminal, plain text when piped, CSV or JSON on request."""

from __future__ import annotations

import sys
from typing import TextIO

import pandas as pd
from rich.console import Console
from rich.table import Table

from .queries import Comparison

__all__ = ["FORMATS", "comparison_frame", "print_comparison", "print_frame"]

FORMATS = ("table", "csv", "json")


def _console(file: TextIO | None) -> Console:
    return Console(file=file or sys.stdout, width=200, soft_wrap=True)


def print_frame(frame: pd.DataFrame, fmt: str = "table", file: TextIO | None = None, title: str | None = None) -> None:
    out = file or sys.stdout
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        out.write(frame.to_json(orient="records", date_format="iso") + "\n")
    else:
        table = Table(title=title, show_edge=False, header_style="bold")
        for column in frame.columns:
            table.add_column(str(column), justify="right" if pd.api.types.is_numeric_dtype(frame[column]) else "left")
        for row in frame.itertuples(index=False):
            table.add_row(*("" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
        _console(out).print(table)


def _scale(metric: str) -> float:
    return 100.0 if "accuracy" in metric else 1.0


def comparison_frame(c: Comparison) -> pd.DataFrame:
    """Long form: one row per cell with mean, std, count, gap and whether it is the column's best."""
    frame = pd.DataFrame({"mean": c.mean.stack(), "std": c.std.stack(), "n": c.count.stack(), "gap": c.gap.stack()})
    frame = frame.reset_index()
    rows, cols = c.mean.index.name, c.mean.columns.name
    frame["best"] = [c.best.get(col) == row for row, col in zip(frame[rows], frame[cols])]
    return frame


def print_comparison(c: Comparison, fmt: str = "table", file: TextIO | None = None) -> None:
    if fmt != "table":
        print_frame(comparison_frame(c), fmt, file)
        return
    k = _scale(c.metric)
    unit = " (%)" if k == 100 else ""
    rows, cols = c.mean.index.name, c.mean.columns.name
    table = Table(title=f"{c.metric}{unit}: mean ± std over seeds (n), ★ best per {cols}, Δ gap to best",
                  show_edge=False, header_style="bold")
    table.add_column(f"{rows} \\ {cols}")
    for col in c.mean.columns:
        table.add_column(f"{col:g}" if isinstance(col, float) else str(col), justify="right")
    for row in c.mean.index:
        cells = []
        for col in c.mean.columns:
            mean, std, n = c.mean.loc[row, col], c.std.loc[row, col], c.count.loc[row, col]
            if pd.isna(mean):
                cells.append("–")
                continue
            text = f"{mean * k:.2f}" + ("" if pd.isna(std) else f" ± {std * k:.2f}") + f" ({n})"
            best = c.best.get(col) == row
            cells.append(f"[bold]{text} ★[/bold]" if best else f"{text} Δ{c.gap.loc[row, col] * k:+.2f}")
        table.add_row(str(row), *cells)
    _console(file).print(table)
