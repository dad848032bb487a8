"""Provenance a trial's row records: the commit of the checkout it ran from, and whether it was dirty."""

import subprocess
from datetime import datetime, timezone

import pytest

from dst_core import TrainConfig
from study import trial


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git repository holding a stand-in of study/trial.py: git_commit and git_dirty ask git about
    the folder of ``trial.__file__``."""
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path counts
    monkeypatch.setattr(trial, "__file__", str(tmp_path / "study" / "trial.py"))
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "trial.py").write_text("v1\n")
    git("init", "-q")
    git("add", "study/trial.py")
    git("commit", "-q", "-m", "one")
    yield tmp_path, git
    trial.git_commit.cache_clear(), trial.git_dirty.cache_clear()  # the real checkout's, for later tests


def _row():
    trial.git_commit.cache_clear(), trial.git_dirty.cache_clear()  # as a new driver would read them
    row = trial.trial_row(trial.Trial.of(TrainConfig()), [], status="failed", started_at=datetime.now(timezone.utc))
    return row["git_commit"], row["git_dirty"]


def test_git_dirty_says_whether_tracked_files_differ_from_the_commit(checkout):
    folder, git = checkout
    head = git("rev-parse", "HEAD")
    assert _row() == (head, False)
    (folder / "scratch.txt").write_text("untracked\n")  # results, notes: not the code that ran
    assert _row() == (head, False)
    (folder / "study" / "trial.py").write_text("v2\n")
    assert _row() == (head, True)
    git("add", "study/trial.py")  # staged but not committed: still not what the commit holds
    assert _row() == (head, True)
    git("commit", "-q", "-m", "two")
    assert _row() == (git("rev-parse", "HEAD"), False)
    (folder / ".git").rename(folder / "not-git")  # no longer a git checkout
    assert _row() == (None, None)


def test_git_dirty_is_read_once_per_process(checkout):
    folder, _ = checkout
    assert _row()[1] is False
    (folder / "study" / "trial.py").write_text("v2\n")
    assert trial.git_dirty() is False  # cached, like git_commit: every row of a driver says the same
