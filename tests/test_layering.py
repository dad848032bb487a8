"""dst_core is a library of its own (no study package, Ray or table stack); only one adapter imports Ray."""

import ast
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


def test_only_the_ray_tune_adapter_imports_ray():
    adapter = ROOT / "study" / "runners" / "ray_tune.py"
    importers = [str(f.relative_to(ROOT)) for f in sorted((ROOT / "study").rglob("*.py"))
                 if f != adapter and "ray" in _imports(f)]  # function bodies included
    assert importers == []
    assert "ray" in _imports(adapter)
