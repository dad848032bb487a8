"""The progress a running study shows: counts, ETA, plain lines off a terminal, a bar on one."""

import io
import pickle

from rich.console import Console

from study.progress import Progress


def test_plain_lines_carry_the_counts(monkeypatch):
    clock = iter([100.0, 110.0, 130.0])  # created at 100; outcomes at 110 and 130
    monkeypatch.setattr("study.progress.time.perf_counter", lambda: next(clock))
    lines = []
    progress = Progress(4, lines.append)
    progress.update(running=2)
    progress.finished("magnitude density 0.1: test 80.00%", failed=False, running=2)
    progress.finished("snip density 0.1: FAILED: boom", failed=True, running=1)
    # 10 s for the first outcome, 3 left -> 30 s; 30 s for two, 2 left -> 30 s
    assert lines == ["[1/4 | 1 done, 2 running, 0 failed | ETA 30s] magnitude density 0.1: test 80.00%",
                     "[2/4 | 1 done, 1 running, 1 failed | ETA 30s] snip density 0.1: FAILED: boom"]


def test_a_terminal_gets_a_bar_and_the_lines_above_it():
    out = io.StringIO()
    lines = []
    progress = Progress(2, lines.append, Console(file=out, force_terminal=True, width=120), title="quick")
    progress.finished("magnitude density 0.1: test 80.00%", failed=False, running=1)
    copy = pickle.loads(pickle.dumps(progress))  # Tune pickles its callbacks with the experiment
    assert copy.bar is None and copy.done == 1
    progress.close()
    text = out.getvalue()
    assert lines == [] and "magnitude density 0.1: test 80.00%" in text
    assert "quick" in text and "1/2" in text and "1 done, 1 running, 0 failed" in text
