"""What the benchmark scripts share: the busy-machine meter, Markdown tables and marked sections."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import time
from pathlib import Path

__all__ = ["cpu_clock", "cpu_model", "other_cores", "table", "verdict", "write_section"]


def cpu_clock() -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds all processes used, CPU seconds this process and the children it
    waited for used: a benchmark that runs its work in subprocesses counts them as its own)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    own = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait
    return time.perf_counter(), busy, own


def other_cores(start, end) -> float | None:
    """Cores that other processes kept busy on average between two ``cpu_clock`` readings."""
    if start is None or end is None or end[0] <= start[0]:
        return None
    wall, busy, own = (e - s for e, s in zip(end, start))
    return max(0.0, busy - own) / wall


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)]


def write_section(path: Path, mark: str, title: str, body: str) -> None:
    """Replace the section between ``<!-- mark:start -->`` and ``<!-- mark:end -->`` of ``path``,
    or append it (creating the file with a ``# Benchmarks`` heading)."""
    start, end = f"<!-- {mark}:start -->", f"<!-- {mark}:end -->"
    section = f"{start}\n## {title}\n\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
