"""dst_core is a library of its own (no study package, Ray or table stack); only the Ray runner
imports Ray; a trial's worker imports only what a trial needs."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = {"study", "ray", "pandas", "pyarrow", "optuna", "matplotlib"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_dst_core_imports_nothing_from_study_or_ray():
    files = sorted((ROOT / "dst_core").rglob("*.py"))
    assert files
    bad = {str(f.relative_to(ROOT)): _imports(f) & FORBIDDEN_IN_CORE for f in files}
    assert {f: b for f, b in bad.items() if b} == {}


def test_only_the_ray_runner_imports_ray():
    runner = {ROOT / "study" / "runners" / "ray_tune.py", ROOT / "study" / "runners" / "trainable.py"}
    importers = [str(f.relative_to(ROOT)) for f in sorted((ROOT / "study").rglob("*.py"))
                 if f not in runner and "ray" in _imports(f)]  # function bodies included
    assert importers == []
    assert all("ray" in _imports(f) for f in runner)


def _modules_after(code: str, watch: tuple[str, ...]) -> list[str]:
    """Which of ``watch`` a fresh interpreter has imported after running ``code``."""
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(sorted(m for m in {watch!r} "
                          "if m in sys.modules))"], capture_output=True, text=True, cwd=ROOT, check=True)
    return eval(out.stdout.strip().splitlines()[-1])


def test_a_trial_worker_imports_neither_the_store_nor_the_driver():
    # Ray Tune itself loads pandas and pyarrow in a worker; ours must add nothing a trial does not use
    watch = ("study.store", "study.progress", "study.runner", "study.spec", "optuna", "matplotlib")
    assert _modules_after("import study.runners.trainable", watch) == []


def test_importing_dst_core_and_the_trial_module_loads_no_torch():
    code = "import dst_core, dst_core.checkpoint, study.trial, study.cli; dst_core.TrainConfig.__dataclass_fields__"
    assert _modules_after(code, ("torch", "ray", "matplotlib")) == []
