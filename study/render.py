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


def format_epoch(m: dict, epochs: int) -> str:
    """``train``'s epoch line: the metrics :class:`dst_core.summary.EpochMetrics` marks as shown, in
    its order (None left out)."""
    import dataclasses

    from dst_core.summary import EpochMetrics

    shown = [f.metadata["shown"].format(m[f.name]) for f in dataclasses.fields(EpochMetrics)
             if f.metadata["shown"] and m.get(f.name) is not None]
    return f"epoch {m['epoch']:>{len(str(epochs))}}/{epochs}  " + "  ".join(shown)


def json_safe(value):
    """JSON has no NaN or Infinity: they become null."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def print_plan(p, current_revision: int, file: TextIO | None = None) -> None:
    """What `run` is about to do: the trials, how many are done, how many resume from checkpoints."""
    out, spec = file or sys.stdout, p.spec
    if spec.search is not None:
        print(f"study {spec.name!r}: Optuna search of {spec.search.n_trials} trials, {len(p.finished)} done, "
              f"{max(spec.search.n_trials - len(p.finished), 0)} to run -> {spec.study_dir}", file=out)
        return
    from .trial import count_by_kind

    print(f"study {spec.name!r}: {len(p.trials)} trials ({count_by_kind(p.trials)}), {len(p.finished)} done, "
          f"{len(p.missing)} to run ({len(p.resume_from)} from checkpoints) -> {spec.study_dir}", file=out)
    if p.outdated:
        print(f"  {len(p.outdated)} of the done trials ran an older algorithm revision than this dst-study's "
              f"({current_revision}): they count as done; --rerun-outdated runs them again", file=out)
    if p.outdated_plugins:
        print(f"  {len(p.outdated_plugins)} of the done trials ran with older plugin code (a plugin's source "
              "changed since): they count as done; --rerun-outdated runs them again", file=out)
    if p.rerun:
        print(f"  {len(p.rerun)} trials of older code run again from epoch 0; the rows they have now are kept in "
              f"{p.store.root}/superseded/", file=out)
    started_over = p.started_over - p.rerun
    if started_over:
        print(f"  {len(started_over)} trials start over from epoch 0: their checkpoints were made by other code "
              "(another algorithm revision or plugin source)", file=out)


def print_closing(spec, trials: pd.DataFrame) -> None:
    """What `run` ends with: the comparison along the spec's axes, or a search's trials ranked by its
    metric with each config's test accuracy beside it (read once per config, never used to rank)."""
    from .comparison import compare, default_axes, default_metric, ranking, stopped_note

    from .store import StoreError

    done = trials[trials["status"] == "completed"]
    if done.empty:
        return
    if spec.search is None:
        try:
            table = compare(done, default_metric(done), *default_axes(done))
        except StoreError as e:  # rows of different code are not pooled; the trials themselves are stored
            print(f"dst-study: no closing comparison: {e}", file=sys.stderr)
            return
        print_comparison(table)
        return
    metric = spec.search.metric
    table = ranking(done, metric, list(spec.search.space), spec.search.mode == "max")
    test = "final_test_accuracy" if done["test_accuracy_at_best_val"].isna().all() else "test_accuracy_at_best_val"
    title = (f"{metric}: the search's trials ranked on the test set (select_on_test: their test accuracies are "
             "optimistic), best first" if "test" in metric else
             f"{metric}: the search's trials ranked on validation data, best first")
    if test != metric:
        table.insert(list(table.columns).index(metric) + 1, test, table["trial_id"].map(done.set_index("trial_id")[test]))
        title += f"; {test}: each config's test accuracy, for reference only"
    print_frame(table, title=title)
    for note in stopped_note(trials):
        print(f"Note: {note}")


def print_status(s, show: int = 10, file: TextIO | None = None) -> None:
    """``dst-study status``: a :class:`study.standing.StudyStatus` as lines."""
    from .store import STATUSES

    out = file or sys.stdout
    # completed and failed always; stopped (a search's early stopping) only where there are some
    statuses = [x for x in STATUSES if x in ("completed", "failed") or s.counts.get(x)]
    statuses += sorted(set(s.counts) - set(statuses))
    print(f"{s.root}: {s.trials} trials: " + ", ".join(f"{s.counts.get(x, 0)} {x}" for x in statuses), file=out)
    if not s.current_revision_only:
        from dst_core import ALGORITHM_REVISION

        print(f"  per algorithm revision (this dst-study's: {ALGORITHM_REVISION}): "
              + ", ".join(f"{r}: {n}" for r, n in s.revisions.items()), file=out)
    for module, shas in s.plugin_versions.items():
        print(f"  rows of {len(shas)} versions of plugin {module} (sha256: "
              + ", ".join(f"{sha[:12]} {n} trials" for sha, n in shas.items())
              + "): compare pools none of them; `dst-study run SPEC --rerun-outdated` runs the older ones again",
              file=out)
    for folder, n in s.superseded.items():
        print(f"  superseded: {n} trials of older code kept in {folder}", file=out)
    if s.total is not None:
        checkpoints = f" ({s.with_checkpoints} with checkpoints)" if s.with_checkpoints else ""
        finish = f"; `dst-study resume {s.root}` finishes it" if s.missing_total else ""
        print(f"  spec: {s.total} trials, {s.missing_total} missing{checkpoints}{finish}", file=out)
        for m in s.missing:
            print(f"  missing {m.id} ({m.label}{'' if m.resumes is None else ', ' + m.resumes})", file=out)
        if s.missing_total > len(s.missing) and s.missing:
            print(f"  ... and {s.missing_total - len(s.missing)} more (`dst-study resume {s.root} --dry-run` lists "
                  "all)", file=out)
    for f in s.failures:
        print(f"  failed {f.id} ({f.what}): {f.error}", file=out)


def print_train_start(run, checkpoint_dir: str | None, file: TextIO, show_sparsity: bool = False) -> None:
    """``train``'s first lines: what trains where, what it sparsifies (``show_sparsity``), and the epoch
    it resumes from."""
    config, trainer = run.trial.config, run.trainer
    print(f"training {config.model} on {config.dataset} ({trainer.device}): density {config.density}, "
          f"{config.init}, {config.criterion}/{config.growth}, {config.schedule} drop {config.drop_fraction}, "
          f"update every {config.update_period} steps, {config.epochs} epochs, seed {config.seed}", file=file)
    if show_sparsity:
        print(trainer.sparse.describe() if trainer.sparse else "dense: every parameter is trained dense", file=file)
    if trainer.resumed_from is not None:
        where = f"epoch {trainer.epoch}" + (f", batch {trainer.batch}" if trainer.batch else "")
        print(f"resumed from {checkpoint_dir} at {where}", file=file)


def print_train_end(done, file: TextIO) -> None:
    """``train``'s last lines: where its row went (or why it could not), and its final numbers."""
    if done.stored:
        print(f"trial {done.trial.id} written to {done.stored}", file=file)
    if done.store_error:  # the result is still printed below
        print(f"dst-study: error: the result could not be written: {done.store_error}", file=sys.stderr)
    final = done.summary
    selected = final["test_accuracy_at_best_val"]
    at_best_val = "" if selected is None else \
        f" ({selected:.2%} at epoch {final['best_val_epoch']}, the best validation accuracy)"
    print(f"final: test accuracy {final['final_test_accuracy']:.2%}{at_best_val}, "
          f"density {final['final_density']:.4f}, ITOP {final['final_itop_rate']:.3f}", file=file)


def print_query(frame: pd.DataFrame, table: str, fmt: str, chosen: bool) -> None:
    """``query``'s rows. As a terminal table without chosen columns, a readable few (every column
    would squeeze each to nothing), and a line saying how to see the rest."""
    from .queries import table_columns

    if fmt != "table" or chosen:
        print_frame(frame, fmt)
        return
    shown = table_columns(table, frame)
    print_frame(frame[shown], fmt)
    if len(shown) < len(frame.columns):
        sys.stdout.flush()
        print(f"{len(shown)} of {len(frame.columns)} columns shown; --columns all shows every one, --columns NAME "
              "... chooses (--format csv and json hold them all)", file=sys.stderr)


def print_registries(registries: dict) -> None:
    """``list``: every registered name with its description, per registry."""
    for title, registry in registries.items():
        print(f"{title}:")
        for entry in registry:
            extra = "  (needs gradient)" if entry.meta.get("needs_grad") else ""
            extra += f"  (plugin {entry.plugin})" if entry.plugin else ""
            print(f"  {entry.name:<24}{entry.meta.get('description', '')}{extra}")
