"""Plugins: a spec's ``plugins:`` and ``--plugin`` import the user's modules (only in the commands that
run or validate), every row records the plugins its trial used, and results of different plugin code
are not pooled."""

import json
import logging
import re
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

import dst_core
from study import plugins as plugins_mod
from study.cli import main
from study.runner import plan, save_spec
from study.spec import SpecError, parse
from study.store import ParquetStore
from study.trial import Trial, result_rows, trial_row

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
REGISTRIES = ["CRITERIA", "GROWTH", "SCHEDULES", "DENSITY", "MODELS", "DATASETS"]

CRITERION = '''
import dst_core

@dst_core.register_criterion("{name}", needs_grad=True, paper_order="before_step", description="|g|")
def score(w, g, mask, generator=None):
    return g.abs()
'''

MARKER = '''
from pathlib import Path
import os
import dst_core

Path({marker!r}).open("a").write(f"{{os.getpid()}} {{__file__}}\\n")

@dst_core.register_criterion("{name}", needs_grad=False, paper_order="after_step", description="|w|")
def score(w, g, mask, generator=None):
    return w.abs()


@dst_core.register_model("{name}_mlp", description="in-32-out")
def mlp(input_shape, num_classes):
    from math import prod
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(prod(input_shape), 32), nn.ReLU(), nn.Linear(32, num_classes))
'''

MODELS = '''
import math
from torch import nn
import dst_core

# a model from a library is a factory of this signature, e.g. torchvision.models.resnet18(num_classes=n)
dst_core.register_model("{name}_flat", description="linear on the flattened input")(
    lambda input_shape, num_classes: nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes)))
dst_core.register_model("{name}_64", description="linear on 64 inputs")(
    lambda input_shape, num_classes: nn.Linear(64, num_classes))
'''


@pytest.fixture
def workdir(tmp_path, monkeypatch, forget_plugins):
    """The user's working directory, where their plugins live; what they register is forgotten after."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("plug_")]:  # imported but refused: not in _LOADED
        del sys.modules[name]


def _plugin(folder: Path, template: str = CRITERION, **fields) -> str:
    """Write a plugin module into ``folder``; its module name (also the name it registers)."""
    name = f"plug_{uuid.uuid4().hex[:10]}"
    (folder / f"{name}.py").write_text(template.format(name=name, **fields))
    return name


def _history(acc: float) -> list[dict]:
    return [{"epoch": 1, "step": 10, "lr": 0.1, "train_loss": 1.0, "train_accuracy": acc, "val_loss": 1.0,
             "val_accuracy": acc, "test_loss": 1.0, "test_accuracy": acc, "density": 0.1, "drop_fraction": 0.3,
             "itop_rate": 0.2, "n_updates": 2, "update_seconds": 0.01, "epoch_seconds": 0.1}]


def _spec(tmp_path, **extra) -> dict:
    return {"name": "p", "storage": str(tmp_path / "results"), "base": {"epochs": 1},
            "grid": {"criterion": ["magnitude"], "density": [0.1], "seed": [0]}, **extra}


def test_load_plugins_imports_once_says_which_and_records_version_and_source_hash(workdir, capsys):
    import hashlib

    name = _plugin(workdir)
    [info] = plugins_mod.load_plugins([name])
    assert capsys.readouterr().err == f"dst-study: importing plugins: {name}\n"
    assert info.module == name and info.version is None
    assert info.sha256 == hashlib.sha256((workdir / f"{name}.py").read_bytes()).hexdigest()
    assert dst_core.CRITERIA.get(name).plugin == name
    assert plugins_mod.load_plugins([name]) == [info] and capsys.readouterr().err == ""  # once per process


def test_a_spec_naming_a_plugin_component_validates_once_the_plugin_is_imported(workdir, capsys):
    name = _plugin(workdir)
    data = _spec(workdir, plugins=[name], grid={"criterion": [name, "magnitude"], "density": [0.1], "seed": [0]})
    with pytest.raises(SpecError, match=f"unknown criterion|expected one of"):
        parse(data)  # plugins=None: nothing imported, so the name is unknown
    assert name not in sys.modules
    spec = parse(data, plugins=[])
    assert spec.plugins == [name] and {t.config.criterion for t in spec.trials()} == {name, "magnitude"}
    (workdir / "spec.yaml").write_text(json.dumps(data))
    assert main(["validate", "spec.yaml"]) == 0
    out = capsys.readouterr()
    assert "valid: study 'p' with 2 trials" in out.out


def test_plugin_flag_adds_to_the_spec_and_a_bad_plugin_is_one_line(workdir, capsys):
    name = _plugin(workdir)
    (workdir / "spec.yaml").write_text(json.dumps(_spec(workdir, grid={"criterion": [name], "density": [0.1]})))
    assert main(["validate", "spec.yaml", "--plugin", name]) == 0
    assert f"dst-study: importing plugins: {name}" in capsys.readouterr().err
    assert main(["validate", "spec.yaml", "--plugin", "plug_not_there"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "dst-study: importing plugins: plug_not_there",
        f"dst-study: error: spec.yaml: plugin 'plug_not_there': no such module in {workdir} or on the Python path"]
    clash = _plugin(workdir, CRITERION.replace('"{name}"', '"snip"'))
    assert main(["validate", "spec.yaml", "--plugin", clash]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"dst-study: error: spec.yaml: plugin '{clash}': criterion 'snip': the name is taken by a "
                   "built-in (criterion 'snip'); choose another name")


def test_trial_ids_do_not_change_when_an_unused_plugin_is_listed(workdir):
    name = _plugin(workdir)
    without = parse(_spec(workdir), plugins=[])
    with_ = parse(_spec(workdir, plugins=[name]), plugins=[])
    assert [t.id for t in with_.trials()] == [t.id for t in without.trials()]
    row = trial_row(with_.trials()[0], [], status="completed", started_at=T0)
    assert row["plugins"] is None  # listed but not used: not recorded either


def test_rows_record_the_plugins_a_trial_used(workdir):
    name = _plugin(workdir)
    spec = parse(_spec(workdir, plugins=[name], grid={"criterion": [name]}, include=[{"static": True}]), plugins=[])
    dst, static = sorted(spec.trials(), key=lambda t: t.kind)
    [info] = plugins_mod.load_plugins([name])
    assert json.loads(trial_row(dst, [], status="completed", started_at=T0)["plugins"]) == [info.to_dict()]
    assert trial_row(static, [], status="completed", started_at=T0)["plugins"] is None  # reads no criterion
    # the worker's report says what it ran; the row takes that
    ran = [{"module": name, "version": "1.0", "sha256": "ab" * 32}]
    assert json.loads(result_rows(dst, {"plugins": ran}, status="failed", started_at=T0)[0][0]["plugins"]) == ran


def test_a_plugin_model_is_checked_against_its_data_set_as_a_builtin_is(workdir, capsys):
    name = _plugin(workdir, MODELS)
    ok = _spec(workdir, plugins=[name], base={"epochs": 1, "dataset": "mnist1d", "model": f"{name}_flat"})
    assert parse(ok, plugins=[]).trials()[0].config.model == f"{name}_flat"
    bad = _spec(workdir, plugins=[name], base={"epochs": 1, "dataset": "mnist1d", "model": f"{name}_64"})
    with pytest.raises(SpecError, match=f"model: model '{name}_64' cannot take dataset 'mnist1d' of shape"):
        parse(bad, plugins=[])


BAD_OUTPUTS = '''
import math
from torch import nn
import dst_core


class Dict(nn.Module):  # what a HuggingFace model returns (a ModelOutput is a dict)
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return {{"logits": self.fc(x.flatten(1)), "hidden_states": None}}


dst_core.register_model("{name}_dict", description="a dict of logits")(
    lambda input_shape, num_classes: Dict(math.prod(input_shape), num_classes))
dst_core.register_model("{name}_seven", description="7 logits, whatever the classes")(
    lambda input_shape, num_classes: nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 7)))
'''


@pytest.mark.parametrize("model,message", [
    ("dict", r"model '{name}_dict' on dataset 'mnist1d' \(10 classes\) returned a dict with keys logits, "
             r"hidden_states; expected a tensor of shape \(2, 10\), one row of logits per example. Register a "
             r"wrapper whose forward returns out\['logits'\]"),
    ("seven", r"model '{name}_seven' on dataset 'mnist1d' \(10 classes\) returned a torch.float32 tensor of "
              r"shape \(2, 7\) for 2 examples; expected a floating tensor of shape \(2, 10\)"),
])
def test_validate_refuses_a_model_whose_output_is_not_one_row_of_logits_per_example(model, message, workdir, capsys):
    import yaml

    name = _plugin(workdir, BAD_OUTPUTS)
    fields = _spec(workdir, plugins=[name], base={"epochs": 1, "dataset": "mnist1d", "model": f"{name}_{model}"})
    (workdir / "s.yaml").write_text(yaml.safe_dump(fields))
    assert main(["validate", "s.yaml"]) == 2
    err = capsys.readouterr().err
    assert re.search(message.format(name=name), err), err
    with pytest.raises(dst_core.errors.ContractError, match=message.format(name=name).replace(r"\(2, ", r"\(8, ")
                       .replace("for 2 examples", "for 8 examples")):  # and in a run, at its first step
        next(dst_core.train(dst_core.TrainConfig(model=f"{name}_{model}", epochs=1, batch_size=8, device="cpu")))


def test_a_file_given_as_a_plugin_and_an_unimported_plugins_component_get_one_line_hints(workdir, capsys):
    import yaml

    (workdir / "s.yaml").write_text(yaml.safe_dump(_spec(workdir, base={"epochs": 1, "criterion": "mine"})))
    assert main(["validate", "s.yaml"]) == 2
    err = capsys.readouterr().err
    assert "unknown criterion 'mine' (choices: magnitude, " in err
    assert err.rstrip().endswith("; a plugin's? name its module under plugins: in the spec (or give --plugin MODULE)")
    assert main(["validate", "s.yaml", "--plugin", "./mine.py"]) == 2
    assert "for the file ./mine.py give 'mine', from the folder that holds mine.py" in capsys.readouterr().err


@pytest.fixture
def study_with_marker(workdir):
    """A study folder whose saved spec names a plugin that writes a marker file when imported."""
    marker = workdir / "imported.txt"
    name = _plugin(workdir, MARKER, marker=str(marker))
    spec = parse(_spec(workdir, plugins=[name], grid={"criterion": ["magnitude", "snip"], "density": [0.1, 0.2]}))
    save_spec(spec)
    store = ParquetStore(spec.study_dir)
    for trial in spec.trials():
        store.append(*result_rows(trial, {"history": _history(0.5)}, status="completed", started_at=T0, ended_at=T0))
    return spec, name, marker


def test_read_only_commands_never_import_a_plugin_whatever_the_spec_says(study_with_marker, capsys):
    spec, name, marker = study_with_marker
    d = spec.study_dir
    for argv in (["status", d], ["query", d], ["compare", d], ["list"],
                 ["plot", d, "--kind", "density", "--out", str(marker.parent / "f.png")],
                 ["report", d, "--out", str(marker.parent / "report")]):
        assert main(argv) == 0, argv
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    assert not marker.exists() and name not in sys.modules
    assert "importing plugins" not in capsys.readouterr().err
    # the commands that run or validate a spec import what it names, and say so
    assert main(["validate", f"{d}/spec.yaml"]) == 0
    assert f"dst-study: importing plugins: {name}\n" in capsys.readouterr().err
    assert marker.exists()


def test_compare_and_plot_refuse_to_pool_rows_of_different_plugin_code(workdir, capsys):
    name = _plugin(workdir)
    spec = parse(_spec(workdir, plugins=[name], grid={"criterion": [name, "magnitude"], "seed": [0, 1]}), plugins=[])
    store = ParquetStore(spec.study_dir)
    for i, trial in enumerate(spec.trials()):
        ran = [{"module": name, "version": None, "sha256": ("aa" if trial.config.seed == 0 else "bb") * 32}]
        history = _history(0.5 + i / 100)
        ended = datetime(2026, 1, 1 + trial.config.seed, tzinfo=timezone.utc)
        store.append(*result_rows(trial, {"history": history, "plugins": ran}, status="completed", started_at=T0,
                                  ended_at=ended))
    for argv in (["compare", spec.study_dir], ["plot", spec.study_dir, "--kind", "density", "--out", "f.png"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"these trials ran different source code of plugin {name} ({name}: sha256 aaaaaaaaaaaa, bbbbbbbbbbbb)" \
            in err
    where = err.split("--where '")[1].split("', or re-run")[0]
    assert main(["query", spec.study_dir, "--where", where, "--columns", "criterion", "seed", "--format", "csv"]) == 0
    kept = capsys.readouterr().out.splitlines()[1:]  # the newest code's rows (each row here names the plugin)
    assert sorted(kept) == sorted([f"{name},1", "magnitude,1"])
    assert main(["compare", spec.study_dir, "--where", where]) == 0


def test_the_where_offered_for_mixed_plugin_code_keeps_the_rows_of_other_plugins(workdir, capsys):
    criterion, model = _plugin(workdir), _plugin(workdir, MODELS)
    spec = parse(_spec(workdir, plugins=[criterion, model], base={"epochs": 1, "model": f"{model}_flat"},
                       grid={"criterion": [criterion, "magnitude"], "seed": [0, 1, 2]}), plugins=[])
    store = ParquetStore(spec.study_dir)
    for trial in spec.trials():  # every trial uses the model plugin; seed 0's criterion ran older code
        ran = [{"module": model, "version": None, "sha256": "cc" * 32}]
        if trial.config.criterion == criterion:
            ran.append({"module": criterion, "version": None, "sha256": ("aa" if trial.config.seed == 0 else "bb") * 32})
        ended = datetime(2026, 1, 1 + trial.config.seed, tzinfo=timezone.utc)
        store.append(*result_rows(trial, {"history": _history(0.5), "plugins": sorted(ran, key=lambda e: e["module"])},
                                  status="completed", started_at=T0, ended_at=ended))
    assert main(["compare", spec.study_dir]) == 2
    where = capsys.readouterr().err.split("--where '")[1].split("', or re-run")[0]
    assert main(["query", spec.study_dir, "--where", where, "--columns", "criterion", "seed", "--format", "csv"]) == 0
    kept = sorted(capsys.readouterr().out.splitlines()[1:])
    assert kept == sorted([f"{criterion},1", f"{criterion},2", "magnitude,0", "magnitude,1", "magnitude,2"])


def test_run_counts_trials_of_older_plugin_code_and_reruns_them_when_asked(workdir):
    name = _plugin(workdir)
    spec = parse(_spec(workdir, plugins=[name], grid={"criterion": [name, "magnitude"]}), plugins=[])
    [info] = plugins_mod.load_plugins([name])
    store = ParquetStore(spec.study_dir)
    for trial in spec.trials():
        used = [{**info.to_dict(), "sha256": "00" * 32}] if trial.config.criterion == name else []
        report = {"history": _history(0.5), "plugins": used}
        store.append(*result_rows(trial, report, status="completed", started_at=T0, ended_at=T0))
    plugin_trial = next(t for t in spec.trials() if t.config.criterion == name)
    p = plan(spec)
    assert p.outdated_plugins == {plugin_trial.id} and not p.missing and not p.outdated
    assert [t.id for t in plan(spec, rerun_outdated=True).missing] == [plugin_trial.id]


@pytest.mark.slow
def test_workers_on_every_node_import_a_plugin_only_the_driver_has(tmp_path, monkeypatch, forget_plugins):
    """A multi-node cluster whose workers cannot import the plugin from their path: Ray's runtime
    environment ships it, and each worker imports its shipped copy."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from study.runner import run

    own = tmp_path / "own"  # the user's folder: on the driver's path only (not the workers' cwd or PYTHONPATH)
    own.mkdir()
    marker = tmp_path / "imported.txt"
    name = _plugin(own, MARKER, marker=str(marker))
    # the criterion's module imports a helper module beside it, and a second plugin is a package whose
    # module imports a sibling submodule: both must reach the workers whole
    helper = f"helper_{name}"
    (own / f"{helper}.py").write_text("def halve(t):\n    return t / 2\n")
    source = (own / f"{name}.py").read_text()
    (own / f"{name}.py").write_text(f"from {helper} import halve\n" + source.replace("return w.abs()", "return halve(w.abs())"))
    package = own / f"pkg_{name}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text("from torch import nn\nWIDTH = 24\n")
    (package / "models.py").write_text(
        "import math\nfrom torch import nn\nimport dst_core\nfrom .layers import WIDTH\n\n"
        f"@dst_core.register_model('{name}_pkg', description='from a package')\n"
        "def mlp(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), WIDTH), nn.ReLU(),\n"
        "                         nn.Linear(WIDTH, num_classes))\n")
    monkeypatch.syspath_prepend(str(own))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        spec = parse({"name": "m", "storage": str(tmp_path), "plugins": [name, f"pkg_{name}.models"],
                      "checkpoint_seconds": 0, "base": {"epochs": 1, "device": "cpu", "criterion": name},
                      "grid": {"seed": [0, 1], "model": [f"{name}_mlp", f"{name}_pkg"]}}, plugins=[])
        assert plugins_mod._HELPERS[name] == [helper]  # shipped and hashed with the plugin
        run(plan(spec), address=cluster.address, log=lambda line: None)
        trials = ParquetStore(str(tmp_path / "m")).read("trials").sort_values(["model", "seed"])
        assert list(trials["status"]) == ["completed"] * 4, trials["error"].tolist()
        # the criterion and the model of one module: one entry; a package's model: its own
        assert [[e["module"] for e in json.loads(p)] for p in trials["plugins"]] == \
            [[name]] * 2 + [sorted([name, f"pkg_{name}.models"])] * 2
        imports = [line.split(" ", 1) for line in marker.read_text().splitlines()]
        workers = [path for _, path in imports if not path.startswith(str(own))]
        assert workers and all("runtime_resources" in path for path in workers), imports  # shipped copies
    finally:
        ray.shutdown()
        cluster.shutdown()
        logging.getLogger("ray.tune").setLevel(logging.WARNING)


def test_the_readme_plugin_example_registers_one_of_each_kind_and_its_spec_validates(workdir, capsys):
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Plugins"):readme.index("## The library")]
    (_, spec), (_, module) = re.findall(r"```(\w+)\n(.*?)```", section, re.S)[:2]
    name = f"plug_{uuid.uuid4().hex[:10]}"  # the example's own name may be imported by another test
    (workdir / f"{name}.py").write_text(module)
    (workdir / "spec.yaml").write_text(spec.replace("my_dst", name) + f"storage: {workdir}\n")
    assert main(["validate", "spec.yaml"]) == 0
    assert "valid: study 'my-study' with 12 trials" in capsys.readouterr().out
    assert {e.plugin for r in REGISTRIES if r != "DENSITY" for e in getattr(dst_core, r) if e.plugin} == {name}
    assert sum(e.plugin == name for r in REGISTRIES for e in getattr(dst_core, r)) == 5


def test_the_example_criterion_scores_as_documented_on_the_study_of_records_grid(forget_plugins, monkeypatch):
    """examples/plugins: balanced_mest scores as its docstring says, and its spec is the study of
    record's but for the criterion, so `compare results/mnist1d_fig1 results/mnist1d_balanced_mest`
    lines up every cell and counts the shared baselines once."""
    import torch

    from study.spec import load

    root = Path(__file__).resolve().parents[2]
    monkeypatch.syspath_prepend(str(root / "examples" / "plugins"))
    mine = load(root / "examples" / "plugins" / "balanced_mest.yaml", plugins=[])
    record = load(root / "examples" / "mnist1d_paper_fig1.yaml")
    # |w| / mean|w| + |g| / mean|g| with mean|w| = 2, mean|g| = 0.2
    w, g = torch.tensor([2.0, -1.0, 3.0]), torch.tensor([0.1, -0.4, 0.1])
    score = dst_core.CRITERIA.get("balanced_mest").obj(w, g, torch.ones(3, dtype=torch.bool))
    assert torch.allclose(score, torch.tensor([1.5, 2.5, 2.0]))
    removed = dst_core.select_prune("balanced_mest", w, g, torch.ones(3, dtype=torch.bool), 1)
    assert removed.tolist() == [True, False, False]  # magnitude would remove the second

    theirs = {t.id: t for t in record.trials()}
    dst = [t for t in mine.trials() if t.config.kind == "dst"]
    baselines = [t for t in mine.trials() if t.config.kind != "dst"]
    assert len(dst) == 110 and len(baselines) == 60 and {t.id for t in baselines} <= set(theirs)
    ours = {json.dumps({**t.config.to_dict(), "criterion": "magnitude"}, sort_keys=True) for t in dst}
    record_magnitude = {json.dumps(t.config.to_dict(), sort_keys=True) for t in theirs.values()
                        if t.config.kind == "dst" and t.config.criterion == "magnitude"}
    assert ours == record_magnitude  # every other setting as in the study of record


def test_run_with_every_trial_done_ends_0_without_pooling_mixed_plugin_code_and_status_names_the_mix(
        workdir, capsys):
    import yaml

    name = _plugin(workdir)
    fields = _spec(workdir, plugins=[name], grid={"criterion": [name], "seed": [0, 1, 2]})
    (workdir / "s.yaml").write_text(yaml.safe_dump(fields))
    spec = parse(fields, plugins=[])
    [info] = plugins_mod.load_plugins([name])
    store = ParquetStore(spec.study_dir)
    for trial in spec.trials():  # seed 0 ran older code of the plugin
        ran = [{**info.to_dict(), "sha256": "aa" * 32 if trial.config.seed == 0 else info.sha256}]
        store.append(*result_rows(trial, {"history": _history(0.5), "plugins": ran}, status="completed",
                                  started_at=T0, ended_at=T0))
    capsys.readouterr()
    assert main(["run", "s.yaml"]) == 0  # every trial is done: nothing failed, nothing is left
    captured = capsys.readouterr()
    assert "1 of the done trials ran with older plugin code" in captured.out
    assert captured.out.rstrip().endswith(f"results in {spec.study_dir}; next: `dst-study status {spec.study_dir}`, "
                                          f"`dst-study compare {spec.study_dir}`, `dst-study report {spec.study_dir} "
                                          "--out report/`")
    assert f"dst-study: no closing comparison: these trials ran different source code of plugin {name}" in captured.err
    assert main(["status", spec.study_dir]) == 0
    out = capsys.readouterr().out
    assert f"  rows of 2 versions of plugin {name} (sha256: {info.sha256[:12]} 2 trials, aaaaaaaaaaaa 1 trials)" in out
