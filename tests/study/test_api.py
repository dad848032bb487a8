"""The CLI's work as functions a notebook calls: study.status, study.run_one, and the folder's layout."""

import re
from pathlib import Path

import pytest

import study
from dst_core import ConfigError, TrainConfig
from study.folder import LAYOUT

ROOT = Path(__file__).resolve().parents[2]


def test_status_of_the_committed_study_is_a_value():
    s = study.status(str(ROOT / "results" / "mnist1d_fig1"), show=3)
    assert isinstance(s, study.StudyStatus)
    assert s.counts == {"completed": 610} and s.trials == 610 and s.total == 610 and s.missing_total == 0
    assert s.missing == [] and s.failures == [] and s.problems == [] and s.current_revision_only


def test_status_names_the_missing_trials_in_the_spec_order(tmp_path):
    from study.runner import save_spec
    from study.spec import parse

    spec = parse({"name": "s", "storage": str(tmp_path), "base": {"epochs": 1},
                  "grid": {"density": [0.1, 0.2, 0.3]}})
    save_spec(spec)
    s = study.status(spec.study_dir, show=2)
    assert (s.total, s.missing_total, s.trials) == (3, 3, 0)
    assert [m.label for m in s.missing] == ["magnitude/random density 0.1 seed 0",
                                            "magnitude/random density 0.2 seed 0"]
    assert all(m.resumes is None for m in s.missing) and s.with_checkpoints == 0


def test_run_one_trains_and_stores_one_trial(tmp_path):
    epochs = []
    done = study.run_one(TrainConfig(epochs=2, batch_size=256, update_period=5, device="cpu"),
                         results=str(tmp_path / "r"), on_epoch=epochs.append)
    assert [m["epoch"] for m in epochs] == [1, 2] and len(done.history) == 2 and done.store_error is None
    assert done.summary["epochs_done"] == 2 and done.summary["config"]["epochs"] == 2
    assert study.status(str(tmp_path / "r")).counts == {"completed": 1} and done.stored == str(tmp_path / "r")
    (tmp_path / "blocker").write_text("")
    with pytest.raises(ConfigError, match="--checkpoint-dir .*blocker': is a file"):  # checked before training
        study.run_one(TrainConfig(epochs=1, device="cpu"), checkpoint_dir=str(tmp_path / "blocker"))


def test_the_folder_layout_is_the_one_results_readme_shows():
    block = (ROOT / "results" / "README.md").read_text().split("```")[1]
    shown = {line.split()[0] for line in block.splitlines() if line.startswith("  ")}  # the folder's entries
    assert {name.rstrip("/") for name in LAYOUT} == {re.sub(r"/.*", "", name) for name in shown}


def test_the_functions_stay_functions_after_every_study_module_is_imported():
    """Importing a submodule sets the package's attribute of its name: none may be named like a function."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(study.__path__, "study."):
        if "ray" not in module.name:  # the runners import Ray: a second of start-up for nothing here
            importlib.import_module(module.name)
    assert all(callable(getattr(study, name)) for name in study.__all__)
    assert study.status.__module__ == "study.standing" and isinstance(study.status, type(study.plan))
