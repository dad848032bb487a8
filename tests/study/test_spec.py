"""Bad specs are rejected with one message listing every problem, before anything runs."""

import pytest
import yaml

from study.spec import SpecError, load, parse

BASE = {"name": "s", "base": {"epochs": 1}, "grid": {"density": [0.1, 0.2], "criterion": ["magnitude"]}}


def _spec(**changes):
    data = {**BASE, **changes}
    return {k: v for k, v in data.items() if v is not None}


def test_yaml_numbers_without_a_dot_are_numbers():
    spec = parse(yaml.safe_load("name: s\nbase: {epochs: 1, lr: 5e-2, weight_decay: 5e-4}\ngrid: {density: [1e-1]}\n"))
    config, = (t.config for t in spec.trials())
    assert (config.lr, config.weight_decay, config.density) == (0.05, 0.0005, 0.1)


def test_valid_spec_expands_the_grid_once_per_config():
    spec = parse(_spec(grid={"density": [0.1, 0.2, 0.1], "criterion": ["SNIP", "snip"], "seed": [0, 1]}))
    trials = spec.trials()
    assert len(trials) == 2 * 1 * 2  # duplicates (0.1 twice, SNIP == snip) collapse
    assert {t.config.criterion for t in trials} == {"snip"} and spec.study_dir == "results/s"


def test_baselines_crossed_with_a_grid_are_neither_multiplied_nor_duplicated():
    grid = {"criterion": ["magnitude", "snip", "set"], "growth": ["random", "gradient"], "density": [0.05, 0.1],
            "seed": [1, 2, 3]}
    spec = parse(_spec(grid=grid, include=[{"static": True}, {"density": 1.0}]))
    trials = spec.trials()
    kinds = [t.kind for t in trials]
    assert kinds.count("dst") == 3 * 2 * 2 * 3  # the grid, unchanged
    assert kinds.count("static") == 2 * 3  # one per density and seed, not per criterion and growth
    assert kinds.count("dense") == 3  # one per seed
    assert kinds == sorted(kinds, key=["dst", "static", "dense"].index)  # grid first, then includes
    static = [t for t in trials if t.kind == "static"]
    assert sorted((t.config.density, t.config.seed) for t in static) == [(d, s) for d in (0.05, 0.1) for s in (1, 2, 3)]


def test_an_include_entry_may_hold_lists_and_override_grid_values():
    spec = parse(_spec(grid={"density": [0.1, 0.2], "criterion": ["magnitude"], "seed": [0, 1]},
                       include=[{"criterion": "snip", "growth": ["random", "gradient"], "seed": 7}]))
    extra = [t.config for t in spec.trials() if t.config.criterion == "snip"]
    assert sorted((t.growth, t.density, t.seed) for t in extra) == [
        (g, d, 7) for g in ("gradient", "random") for d in (0.1, 0.2)]


def test_baseline_identity_ignores_the_fields_it_never_reads():
    from dst_core import TrainConfig
    from study.trial_id import trial_id
    a = TrainConfig(static=True, criterion="snip", growth="gradient", update_period=7, density=0.1)
    b = TrainConfig(static=True, density=0.1)
    assert trial_id(a) == trial_id(b) and trial_id(a) != trial_id(TrainConfig(static=True, density=0.2))
    assert trial_id(TrainConfig(density=1.0, init="uniform", static=True)) == trial_id(TrainConfig(density=1.0))
    # a DST trial's identity does not hold `static`: ids of DST trials are those of before the field
    assert "static" not in TrainConfig().identity() and "static" in b.identity()


@pytest.mark.parametrize("data,fragments", [
    (_spec(storag="x"), ["storag: unknown key 'storag'; did you mean 'storage'?"]),
    (_spec(base={"densty": 0.1}), ["base.densty: unknown config key 'densty'; did you mean 'density'?"]),
    (_spec(grid={"density": [0, 1.5]}), ["grid.density[0]: density: got 0; expected a float in (0, 1]",
                                         "grid.density[1]: density: got 1.5"]),
    (_spec(grid={"criterion": ["magnitdue"]}), ["grid.criterion[0]: criterion: unknown criterion 'magnitdue'; "
                                                "did you mean 'magnitude'?"]),
    (_spec(grid={}), ["grid: empty; give at least one axis"]),
    (_spec(grid={"density": []}), ["grid.density: empty list"]),
    (_spec(resources={"gpux": 1}), ["resources.gpux: unknown key 'gpux'; did you mean 'gpu'?"]),
    (_spec(retries=-1), ["retries: Input should be greater than or equal to 0"]),
    (_spec(include=[{"statc": True}]), ["include[0].statc: unknown config key 'statc'; did you mean 'static'?"]),
    (_spec(include=[{"static": "yes"}]), ["include[0].static: static: got 'yes'; expected true or false"]),
    (_spec(include=[{"density": [1.0, 2.0]}]), ["include[0].density[1]: density: got 2.0"]),
    (_spec(include={"static": True}), ["include: Input should be a valid list"]),
    (_spec(base={"epochs": 1, "model": "lenet5"}), ["model: dataset 'mnist1d': model 'lenet5' expects image input"]),
    (_spec(grid={"model": ["mnist1d_mlp", "resnet56"]}), ["model: dataset 'mnist1d': model 'resnet56' expects"]),
    (_spec(storage=""), ["storage: String should have at least 1 character"]),
    (_spec(base={"epochs": 1, "nesterov": "false"}), ["base: nesterov: got 'false'; expected true or false"]),
    (_spec(base={"epochs": 1, "lr": float("nan")}), ["base: lr: got nan; expected a finite number > 0"]),
    (_spec(base={"dataset": "cifar10", "data_root": "/nonexistent/data"}),
     ["data: dataset 'cifar10': expected <root>/cifar-10-batches-py", "/nonexistent/data"]),
])
def test_each_bad_input_gets_a_clear_message(data, fragments):
    with pytest.raises(SpecError) as info:
        parse(data, "study.yaml")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_mistake_in_base_is_reported_once_as_base():
    data = _spec(base={"epochs": 1, "lr": -1}, grid={"density": [0.1, 0.2, 0.3], "criterion": ["snip", "set"]})
    with pytest.raises(SpecError) as info:
        parse(data, "study.yaml")
    message = str(info.value)
    assert message.count("lr: got -1") == 1 and "study.yaml: base: lr: got -1" in message
    # a base setting that only some grid values make invalid is reported where it fails
    data = _spec(base={"epochs": 1, "criterion_params": {"gamma": 2}}, grid={"criterion": ["mest", "snip"]})
    with pytest.raises(SpecError, match="takes no parameter 'gamma'") as info:
        parse(data, "study.yaml")
    assert str(info.value).count("gamma") == 1


def test_dry_run_labels_name_every_axis_the_grid_varies():
    spec = parse(_spec(grid={"lr": [0.1, 0.01], "density": [0.1], "criterion": ["snip"]},
                       include=[{"static": True}]))
    assert spec.axes == ["lr", "static"]
    labels = [t.label for t in spec.trials()]
    assert labels == ["snip/random density 0.1 lr 0.1 seed 0", "snip/random density 0.1 lr 0.01 seed 0",
                      "static density 0.1 lr 0.1 seed 0", "static density 0.1 lr 0.01 seed 0"]


def test_all_problems_are_listed_at_once():
    data = _spec(storag="x", base={"densty": 0.1}, grid={"density": [2.0], "criterion": ["nope"]})
    with pytest.raises(SpecError, match="4 problems") as info:
        parse(data, "study.yaml")
    assert str(info.value).count("study.yaml: ") == 5  # the header and one line per problem
    # a spec without base: (its default) still has its grid checked beside a bad key
    with pytest.raises(SpecError, match="3 problems"):
        parse({"name": "s", "storag": "x", "grid": {"density": [0], "criterion": ["nope"]}})


def test_load_reports_yaml_and_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load(bad)
    with pytest.raises(SpecError, match="cannot read the spec"):
        load(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    assert load(good).name == "s"


def test_examples_are_valid():
    from pathlib import Path
    examples = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.yaml"))
    assert examples
    for path in examples:
        try:
            spec = load(path)
        except SpecError as e:  # examples on file-based data sets are valid but for the data folder
            lines = str(e).splitlines()[1:]
            assert lines and all(": data: dataset " in line for line in lines), str(e)
            continue
        assert spec.trials() or spec.search


def test_search_spec_validates():
    spec = parse({"name": "s", "base": {"epochs": 1}, "search": {
        "n_trials": 4, "space": {"density": {"loguniform": [0.02, 0.5]}, "criterion": {"choice": ["snip", "set"]}}}})
    assert spec.search.n_trials == 4 and spec.search.metric == "best_val_accuracy"  # validation, not test
    with pytest.raises(SpecError, match="search.space.densty: unknown config key 'densty'"):
        parse({"name": "s", "search": {"n_trials": 2, "space": {"densty": {"uniform": [0.1, 0.2]}}}})


@pytest.mark.parametrize("space,fragment", [
    ({"density": {"loguniform": [0.5, 0.02]}}, "search.space.density.loguniform: got low 0.5 >= high 0.02"),
    ({"density": {"loguniform": [0.0, 0.5]}}, "expected low > 0 (a log scale)"),
    ({"density": {"uniform": [0.1, 1.5]}}, "search.space.density.uniform: density: got 1.5"),
    ({"criterion": {"choice": []}}, "search.space.criterion.choice: empty list"),
    ({"criterion": {"choice": ["snip", "magnitdue"]}}, "did you mean 'magnitude'"),
    ({"epochs": {"int": [1.5, 3]}}, "search.space.epochs.int: got [1.5, 3]; expected two integers"),
    ({"lr": {"uniform": ["a", "b"]}}, "expected [low, high], two finite numbers"),
    ({"lr": {"uniform": [0.1, 0.2], "loguniform": [0.1, 0.2]}}, "give exactly one of"),
])
def test_search_space_is_checked_value_by_value(space, fragment):
    with pytest.raises(SpecError) as info:
        parse({"name": "s", "base": {"epochs": 1}, "search": {"n_trials": 2, "space": space}})
    assert fragment in str(info.value)


def test_search_metric_must_be_a_final_metric():
    with pytest.raises(SpecError, match="search.metric: got 'final_test_acc'; did you mean 'final_test_accuracy'"):
        parse({"name": "s", "search": {"n_trials": 2, "metric": "final_test_acc",
                                       "space": {"density": {"uniform": [0.1, 0.2]}}}})


def _search(base=None, space=None, **search):
    return {"name": "s", "base": {"epochs": 1, **(base or {})},
            "search": {"n_trials": 2, "space": space or {"density": {"uniform": [0.1, 0.2]}}, **search}}


@pytest.mark.parametrize("metric", ["final_test_accuracy", "final_test_loss"])
def test_a_test_metric_is_refused_unless_the_spec_opts_in(metric):
    with pytest.raises(SpecError) as info:
        parse(_search(metric=metric))
    assert str(info.value).splitlines()[1:] == [
        f"  spec: search.metric: {metric} selects configs on the test set, which biases the test accuracy reported "
        "for them upward; use a validation metric (best_val_accuracy, final_val_accuracy) or set "
        "search.select_on_test: true to select on test data knowingly"]
    assert parse(_search(metric=metric, select_on_test=True)).search.metric == metric
    assert parse(_search(metric="final_val_accuracy")).search.select_on_test is False


@pytest.mark.parametrize("base,space", [
    ({"val_fraction": 0}, None),
    ({}, {"val_fraction": {"choice": [0.1, 0.0]}}),  # a sampled val_fraction that can be 0
])
def test_a_validation_metric_needs_validation_data(base, space):
    for metric in ("best_val_accuracy", "final_val_accuracy"):
        with pytest.raises(SpecError, match=f"search.metric: {metric} needs validation data, but val_fraction 0 "
                                            "holds none out; set val_fraction > 0"):
            parse(_search(base, space, metric=metric, select_on_test=True))  # the opt-in is for test metrics only
    assert parse(_search(base, space, metric="final_test_accuracy", select_on_test=True))
    assert parse(_search(base, space, metric="final_train_loss", mode="min"))  # neither validation nor test


def test_a_search_metric_must_be_a_trials_column_the_trials_report():
    # final_val_loss is reported each epoch but the trials table has no such column: `run`'s ranking
    # could not show it; best_test_accuracy is a column but no trial reports it to Tune
    for metric in ("final_val_loss", "best_test_accuracy", "test_accuracy_at_best_val"):
        with pytest.raises(SpecError, match=f"search.metric: got '{metric}'.*choices: best_val_accuracy, "):
            parse(_search(metric=metric, select_on_test=True))


def test_a_non_mapping_include_entry_does_not_hide_the_other_problems():
    data = _spec(grid={"density": [0.1, 2.0]}, include=[5, {"density": 3.0}, {"statc": True}])
    with pytest.raises(SpecError, match="4 problems") as info:
        parse(data, "study.yaml")
    for fragment in ("include[0]: Input should be a valid dictionary", "grid.density[1]: density: got 2.0",
                     "include[1].density: density: got 3.0", "include[2].statc: unknown config key 'statc'"):
        assert fragment in str(info.value)
    # an axis that is not a list is named once, without a false "grid: empty" beside it
    with pytest.raises(SpecError, match="2 problems") as info:
        parse(_spec(grid={"density": 0.1, "criterion": ["nope"]}), "study.yaml")
    assert "grid.density: Input should be a valid list" in str(info.value) and "grid: empty" not in str(info.value)


@pytest.mark.parametrize("grid", ["absent", {}, None])
def test_no_grid_an_empty_grid_and_a_null_grid_are_the_same(grid):
    data = {k: v for k, v in _spec().items() if k != "grid"}
    if grid != "absent":
        data["grid"] = grid  # `grid:` with every axis commented out is null
    with pytest.raises(SpecError, match="grid: empty; give at least one axis"):
        parse(data, "study.yaml")
    assert len(parse({**data, "include": [{"density": 0.1}, {"density": 1.0}]}).trials()) == 2


@pytest.mark.parametrize("storage,fragment", [
    ("{tmp}/a-file", "{tmp}/a-file is a file; results need a folder"),
    ("{tmp}/a-file/under", "{tmp}/a-file is a file; results need a folder"),
    ("/proc/no-such-folder", "cannot write results there"),
])
def test_validate_checks_storage_as_run_does_and_creates_nothing(tmp_path, capsys, storage, fragment):
    from study.cli import main
    (tmp_path / "a-file").write_text("x")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_spec(storage=storage.format(tmp=tmp_path))))
    before = sorted(tmp_path.rglob("*"))
    for command in (["validate"], ["run", "--dry-run"]):
        assert main([command[0], str(spec), *command[1:]]) == 2
        assert f"storage: {storage.format(tmp=tmp_path)}/s: {fragment.format(tmp=tmp_path)}" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before
    spec.write_text(yaml.safe_dump(_spec(storage=str(tmp_path / "new" / "deeper"))))
    assert main(["validate", str(spec)]) == 0
    assert sorted(tmp_path.rglob("*")) == before  # validate made no folder


@pytest.mark.parametrize("spec, expected", [
    ({"grid": {"num_workers": [0, 2]}}, "num_workers 2: a trial reads with 2 DataLoader worker processes besides its "
     "own, but resources.cpu 1 reserves 1 CPU; set resources.cpu: 3"),
    ({"base": {"num_workers": 1}, "grid": {"density": [0.1]}, "resources": {"cpu": 1.5}}, "num_workers 1: a trial reads with 1 DataLoader worker "
     "process besides its own, but resources.cpu 1.5 reserves 1.5 CPUs; set resources.cpu: 2"),
    ({"base": {"num_workers": 3}, "grid": {"density": [0.1]}, "resources": {"cpu": 4}}, None),
    ({"grid": {"density": [0.1]}, "include": [{"density": 0.2, "num_workers": 1}]}, "num_workers 1:"),
    ({"grid": {"density": [0.1]}}, None),
    ({"search": {"n_trials": 2, "space": {"num_workers": {"int": [0, 4]}}}}, "num_workers 4:"),
    ({"search": {"n_trials": 2, "space": {"density": {"choice": [0.1]}}}, "base": {"num_workers": 2},
      "resources": {"cpu": 2}}, "num_workers 2:"),
])
def test_more_dataloader_workers_than_reserved_cpus_is_said(tmp_path, spec, expected):
    from study.spec import oversubscribed

    lines = oversubscribed(parse({"name": "w", "storage": str(tmp_path), **spec}))
    assert (lines[0][:len(expected)] if lines else None) == expected, lines
    assert len(lines) <= 1


def test_validate_says_when_trials_oversubscribe_their_cpus(tmp_path, capsys):
    from study.cli import main

    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"name": "w", "storage": str(tmp_path), "base": {"num_workers": 2},
                                          "grid": {"density": [0.1]}}))
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("dst-study: warning: num_workers 2: ") and err.count("\n") == 1, err


def test_a_density_too_low_for_the_model_is_refused_before_anything_runs(tmp_path):
    data = {"name": "d", "storage": str(tmp_path), "base": {"epochs": 1}, "grid": {"density": [1e-5, 0.1]}}
    with pytest.raises(SpecError, match=r"model 'mnist1d_mlp': density: got 1e-05; under erk layer 1.weight \(256, 40\) "
                                        r"would get no active weight \(3 layers in all\); expected at least 2.58e-05"):
        parse(data)
    assert not (tmp_path / "d").exists()


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: dup\ngrid:\n  density: [0.1]\nbase: {epochs: 1}\ngrid:\n  criterion: [snip]\n")
    with pytest.raises(SpecError, match=r"not valid YAML: key 'grid' given twice \(first at line 2\): a mapping takes "
                                        r"each key once; merge the two at line 5, column 1"):
        load(path)
    path.write_text("name: m\nstorage: x\nbase: &b {epochs: 1, lr: 0.1}\ngrid:\n  <<: *b\n  density: [0.1]\n"
                    "include:\n  - {<<: *b, lr: 0.05}\n")  # a merge key's values may be overridden
    with pytest.raises(SpecError, match="grid.epochs: Input should be a valid list; got 1"):  # past the YAML: no duplicate
        load(path)


def test_a_grid_past_max_trials_is_refused_with_its_count_before_it_is_expanded(tmp_path, monkeypatch):
    from study.spec import StudySpec

    monkeypatch.setattr(StudySpec, "trials", lambda self: pytest.fail("expanded"))
    data = {"name": "g", "storage": str(tmp_path), "base": {"epochs": 1},
            "grid": {"density": [0.1, 0.2], "seed": list(range(60_000))}, "include": [{"density": 0.3}]}
    with pytest.raises(SpecError, match=r"grid: 180,000 trials \(density 2 x seed 60000 and 1 include entries\), more "
                                        r"than max_trials \(100,000\); give max_trials: 180000"):
        parse(data)
    monkeypatch.undo()
    small = {**data, "grid": {"density": [0.1, 0.2], "seed": [0, 1]}, "max_trials": 5}
    assert StudySpec.model_validate(small).n_cells() == 6 == len(list(StudySpec.model_validate(small).cells()))
    with pytest.raises(SpecError, match=r"grid: 6 trials .*more than max_trials \(5\)"):
        parse(small)
    assert len(parse({**small, "max_trials": 6}).trials()) == 6
