"""`dst-study export` of a study to each tracking tool: seconds, seconds per trial and size, as a new
process each; then the same command again (nothing new: it only compares what the tool holds).

    python bench/bench_export.py [--study results/mnist1d_fig1] [--tools tensorboard mlflow wandb] [--out FILE.md]

The targets go to a temporary folder: TensorBoard and W&B (offline) a folder each, MLflow a SQLite
file. Nothing contacts a server.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from report import cpu_clock, cpu_model, other_cores, table, write_section

from study.queries import open_study

ROOT = Path(__file__).resolve().parents[1]

TOOLS = ("tensorboard", "mlflow", "wandb")
NOTES = ("Where the time goes. MLflow: its SQL store builds an ORM object per metric value (1,415 per trial) "
         "and updates the latest values per batch; `log_batch` of the whole run is already its bulk path. W&B: one "
         "`wandb.init(mode=\"offline\", reinit=\"create_new\")` per trial in one process, W&B's service writing "
         "the `.wandb` files beside it; four threads writing runs at once were about 30 % faster here, but W&B "
         "does not document concurrent `init` from threads, so runs are written one after the other. \"again\": "
         "each tool is asked what it holds (one stamp per trial) and nothing is written.")


def _target(tool: str, work: Path) -> str:
    return f"sqlite:///{work / 'mlflow.db'}" if tool == "mlflow" else str(work / tool)


def _size(tool: str, work: Path) -> int:
    path = work / ("mlflow.db" if tool == "mlflow" else tool)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files)  # W&B links each run's core log to one file outside


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command (its children, W&B's service among them, included)."""
    start = cpu_clock()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    end = cpu_clock()
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return end[0] - start[0], end[2] - start[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="results/mnist1d_fig1")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--out", type=Path, help="Markdown file whose bench_export section is (re)written")
    args = parser.parse_args(argv)
    store = open_study(args.study)
    trials, epochs = len(store.read("trials", ["trial_id"])), len(store.read("history", ["epoch"]))
    rows, clock = [], cpu_clock()
    with tempfile.TemporaryDirectory(prefix="bench_export-") as work:
        work = Path(work)
        env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
               "WANDB_CONFIG_DIR": str(work / "home"), "WANDB_CACHE_DIR": str(work / "home"),
               "WANDB_DATA_DIR": str(work / "home"), "PYTHONPATH": str(ROOT)}
        for tool in args.tools:
            command = [sys.executable, "-m", "study.cli", "export", args.study, "--to", tool, _target(tool, work)]
            wall, cpu = _timed(command, env)
            again, _ = _timed(command, env)
            rows.append([f"`{tool}`", f"{wall:.1f}", f"{wall / trials:.3f}", f"{cpu:.1f}",
                         f"{_size(tool, work) / 2**20:.0f}", f"{again:.1f}"])
            print(rows[-1], flush=True)
    busy = other_cores(clock, cpu_clock())
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    lines = [f"Command: `{command}` (each tool: `dst-study export {args.study} --to TOOL TARGET`, a new process, "
             "twice)", "",
             f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; {trials} trials, {epochs} epochs (a run per "
             "trial: its config fields, 14 metrics per epoch and 15 final ones)",
             f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores); other processes used "
             + (f"{busy:.2f} cores on average" if busy is not None else "n/a cores"),
             f"- Python {platform.python_version()}", ""]
    if busy is not None and busy > 0.1:
        lines += [f"**Warning:** other processes kept {busy:.2f} cores busy on average; the figures below are slower "
                  "than on an idle machine.", ""]
    lines += table(["tool", "export s", "s per trial", "CPU s", "size MiB", "again s (nothing new)"], rows)
    lines += ["", NOTES]
    body = "\n".join(lines) + "\n"
    print(body)
    if args.out:
        write_section(args.out, "bench_export", "Export to tracking tools (bench/bench_export.py)", body)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
