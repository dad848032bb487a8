"""What a running study shows: one line per finished trial and the study's counts with an ETA.

On a terminal the counts live in a progress bar under the lines; elsewhere (a log file, a SLURM
output file, a test) every line starts with them, so a log read later tells the same story.
"""

from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

__all__ = ["Progress"]


class Progress:
    """Counts of a study's ``total`` trials to run; :meth:`finished` takes each outcome's line.

    ``log`` receives plain lines; ``console``, when it is a terminal, gets a live bar instead.
    """

    def __init__(self, total: int, log: Callable[[str], None] = print, console: Console | None = None,
                 title: str = "study"):
        self.total, self.log = total, log
        self.done = self.failed = self.running = 0
        self.slots = 1  # the most trials seen running at once
        self.seconds: list[float] = []  # of each finished trial
        self.bar: Bar | None = None
        if console is not None and console.is_terminal:
            self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console)
            self.task = self.bar.add_task(title, total=total, counts=self._counts())
            self.bar.start()

    def eta(self) -> float | None:
        """Seconds left: the trials to go at the mean seconds of those finished, run as many at once
        as were seen running (so Ray's start-up does not inflate it); None before the first one."""
        if not self.seconds:
            return None
        left = max(self.total - self.done - self.failed, 0)
        return sum(self.seconds) / len(self.seconds) * left / self.slots

    def _counts(self) -> str:
        eta = self.eta()
        return (f"{self.done} done, {self.running} running, {self.failed} failed | "
                f"ETA {'?' if eta is None else f'{eta:.0f}s'}")

    def update(self, running: int) -> None:
        """Trials running now (Tune's view, retries included)."""
        if running != self.running:
            self.running = running
            self.slots = max(self.slots, running)
            self._refresh()

    def finished(self, line: str, *, failed: bool, running: int, seconds: float | None = None) -> None:
        """One trial completed or finally failed after ``seconds``; ``line`` says which and how it did."""
        self.done += not failed
        self.failed += failed
        self.running = running
        self.slots = max(self.slots, running + 1)
        if seconds is not None:
            self.seconds.append(seconds)
        if self.bar is not None:
            self.bar.console.print(line, highlight=False)
        else:
            self.log(f"[{self.done + self.failed}/{self.total} | {self._counts()}] {line}")
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done + self.failed, counts=self._counts())

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks with the experiment's state; a live bar stays in this process
        return {**self.__dict__, "bar": None}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
