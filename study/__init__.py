"""study: declarative studies of many DST runs (specs, fan-out, results, queries) and the CLI.

From Python, each command's work is a function that returns a value (the CLI only renders it):

    from study import status, run_one, load_spec, plan, run_study
    status("results/quick")                       # StudyStatus: counts, what is missing, last failures
    run_one(TrainConfig(density=0.1))             # OneRun: one trial, as `dst-study train`
    run_study(plan(load_spec("examples/quick.yaml")))   # StudyRun: the trials after the run, what is left

They load lazily (PEP 562), and no module is named like one of them (importing a submodule sets the
package's attribute of its name, which would hide the function): importing ``study`` costs nothing, and a Ray worker that imports
``study.runners.trainable`` never loads pandas or the result store.
"""

import importlib
from typing import Any

_LAZY = {"status": "standing", "StudyStatus": "standing", "run_one": "trial", "OneRun": "trial", "Trial": "trial",
         "plan": "runner", "run_study": "runner", "StudyRun": "runner", "StudyFolder": "folder",
         "open_study": "queries", "query": "queries", "Studies": "queries", "compare": "comparison",
         "plot": "plots", "write_report": "report"}
_RENAMED = {"load_spec": ("spec", "load")}


def __getattr__(name: str) -> Any:
    module, attr = _RENAMED.get(name, (_LAZY.get(name), name))
    if module is None:
        raise AttributeError(f"module 'study' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


__all__ = [*_LAZY, *_RENAMED]
