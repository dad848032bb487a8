"""The progress a running study shows: counts, ETA, plain lines off a terminal, a bar on one."""

import io
import pickle

from rich.console import Console

from study.progress import Progress


def test_plain_lines_carry_the_counts_and_an_eta():
    lines = []
    progress = Progress(6, lines.append)
    progress.update(running=2)
    progress.finished("magnitude density 0.1: test 80.00%", failed=False, running=1, seconds=10.0)
    progress.finished("snip density 0.1: FAILED: boom", failed=True, running=2, seconds=20.0)
    progress.finished("set density 0.1: test 70.00%", failed=False, running=2, seconds=30.0)
    # ETA: the trials left at the mean seconds of the finished ones, as many at once as seen running:
    # 10 s x 5 left / 2, then 15 s x 4 / 3 (the failed one and 2 others ran at once), then 20 s x 3 / 3
    assert lines == ["[1/6 | 1 done, 1 running, 0 failed | ETA 25s] magnitude density 0.1: test 80.00%",
                     "[2/6 | 1 done, 2 running, 1 failed | ETA 20s] snip density 0.1: FAILED: boom",
                     "[3/6 | 2 done, 2 running, 1 failed | ETA 20s] set density 0.1: test 70.00%"]


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
