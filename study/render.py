"""Terminal output of tables: rich tables on a terminal, plain text when piped, CSV or JSON on request."""

from __future__ import annotations

import sys
from typing import TextIO

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from .comparison import Comparison

__all__ = ["FORMATS", "comparison_caption", "comparison_frame", "comparison_tables", "print_comparison",
           "print_frame"]

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
            table.add_row(*map(_cell, row))
        _console(out).print(table)


def _cell(value) -> str:
    """A table cell: lists (``lr_milestones``) as lists, numbers to 4 digits, nulls empty."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(map(_cell, value)) + "]"
    if pd.isna(value):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _scale(metric: str) -> float:
    return 100.0 if "accuracy" in metric else 1.0


def comparison_frame(c: Comparison) -> pd.DataFrame:
    """Long form: one row per cell with n, mean, std, the test that ran against the best row (or the
    reference), the difference to it with its 95 % CI, p before and after correction, the difference
    the test could detect with 80 % power, and best / tied."""
    columns = [*c.split, c.rows, c.cols, "kind", "n", "mean", "std", "test", "diff", "ci_low", "ci_high", "t", "p",
               "p_adjusted", "detectable", "best", "tied"]
    return c.cells[columns].reset_index(drop=True)


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _order(value) -> tuple:
    return str(type(value)), value


def _row_order(table: pd.DataFrame, rows: str) -> list:
    dst = sorted(table.loc[table["kind"] == "dst", rows].unique(), key=_order)  # numbers as numbers
    return dst + [r for r in ("static", "dense") if (table[rows] == r).any()]


def comparison_tables(c: Comparison, percent: bool = True) -> list[tuple[str, list[str], list[list[str]], str]]:
    """Each table as (title, header, rows of cell texts, the line under it): for any renderer. A cell
    is mean ± std with ★ best and ☆ tied, or, against a reference, the difference ± the half-width of
    its 95 % CI with * where significant; the line says what difference the table's tests could detect."""
    k = _scale(c.metric) if percent else 1.0
    usual_n = int(c.cells["n"].mode().iloc[0]) if len(c.cells) else 0
    out = []
    for values, table in c.tables:
        title = ", ".join(f"{axis} = {_label(v)}" for axis, v in values.items())
        columns = sorted(table.loc[table["kind"] == "dst", c.cols].unique(), key=_order)
        if not columns:  # baselines only: their own columns, or one for the dense value that spans them all
            columns = sorted(table[c.cols].dropna().unique(), key=_order) or [None]
        at = {}  # (row, column) -> its cell, the first of any duplicates; None: a value for every column
        for cell in table.to_dict("records"):
            col = cell[c.cols]
            at.setdefault((cell[c.rows], None if not isinstance(col, tuple) and pd.isna(col) else col), cell)
        body = []
        for row in _row_order(table, c.rows):
            cells = []
            for col in columns:
                cell = at.get((row, col)) or at.get((row, None))
                if cell is None:
                    cells.append("–")
                    continue
                cells.append(_cell_text(c, cell, k, usual_n))
            body.append([str(row), *cells])
        out.append((title, [f"{c.rows} \\ {c.cols}", *("all" if col is None else _label(col) for col in columns)],
                    body, _power_line(c, table, k)))
    return out


def _cell_text(c: Comparison, cell: dict, k: float, usual_n: int) -> str:
    n = "" if cell["n"] == usual_n else f" ({cell['n']})"
    if c.reference is not None and cell[c.rows] != c.reference and not pd.isna(cell["diff"]):
        ci = "" if pd.isna(cell["ci_low"]) else f" ± {(cell['ci_high'] - cell['ci_low']) / 2 * k:.1f}"
        significant = not pd.isna(cell["p_adjusted"]) and cell["p_adjusted"] < c.alpha
        return f"{cell['diff'] * k:+.1f}{ci}{n}" + (" *" if significant else "")
    text = f"{cell['mean'] * k:.1f}" + ("" if pd.isna(cell["std"]) else f" ± {cell['std'] * k:.1f}") + n
    return text + (" ★" if cell["best"] else " ☆" if cell["tied"] else "")


def _power_line(c: Comparison, table: pd.DataFrame, k: float) -> str:
    """What a tie means in this table: the difference its tests find with 80 % power."""
    detectable = table["detectable"].dropna()
    if detectable.empty:
        return "no test ran: a tie here means nothing was tested (fewer than 2 seeds per cell)"
    unit = " points" if k == 100 else ""
    level = "α/m, Holm's strictest step" if c.correction == "holm" else f"α = {c.alpha:g}"
    return (f"power: its tests detect a difference of {detectable.median() * k:.1f}{unit} with 80 % probability "
            f"(median over {len(detectable)} comparisons, range {detectable.min() * k:.1f}–"
            f"{detectable.max() * k:.1f}, at their n and spread, two-sided at {level}); a smaller true difference "
            f"is likely to read as a tie")


def comparison_caption(c: Comparison) -> str:
    unit = " (%)" if _scale(c.metric) == 100 else ""
    usual_n = int(c.cells["n"].mode().iloc[0]) if len(c.cells) else 0
    n = f"n = {usual_n} trials per row (seeds × pooled cells)" if c.pool else f"n = {usual_n} seeds per cell"
    return f"{c.metric}{unit}: {c.caption}; {n} unless shown in ( )"


def print_comparison(c: Comparison, fmt: str = "table", file: TextIO | None = None) -> None:
    if fmt != "table":
        print_frame(comparison_frame(c), fmt, file)
        return
    console = _console(file)
    console.print(comparison_caption(c), markup=False)
    for title, header, body, power in comparison_tables(c):
        table = Table(title=title or None, show_edge=False, header_style="bold")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in body:
            styled = [f"[bold]{t}[/bold]" if t.endswith(("★", "*")) else t for t in row]
            table.add_row(*styled)
        console.print(table)
        console.print(power, markup=False)
    for note in c.notes:
        console.print(f"note: {note}", markup=False)
