"""The result-store commands end to end: train --results, query, compare, plot, status, compact."""

import json

import pytest

from study.cli import main

QUICK = ["--epochs", "2", "--batch-size", "256", "--lr", "0.1", "--update-period", "5", "--device", "cpu"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "demo"
    for criterion in ("magnitude", "snip"):
        for density in ("0.05", "0.2"):
            for seed in ("0", "1"):
                assert main(["train", *QUICK, "--criterion", criterion, "--density", density, "--seed", seed,
                             "--jaccard-every", "2", "--results", str(root)]) == 0
    return root


def test_train_results_then_compare_json(study, capsys):
    capsys.readouterr()
    assert main(["compare", str(study), "--format", "json"]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert len(cells) == 4 and all(c["n"] == 2 for c in cells)
    assert sum(c["best"] for c in cells) == 2  # one best criterion per density


def test_compare_table_marks_best(study, capsys):
    assert main(["compare", str(study)]) == 0
    out = capsys.readouterr().out
    assert out.count("★") == 1 + 2  # the title explains ★, then one best cell per density
    assert "magnitude" in out and "snip" in out and "0.05" in out


def test_query_where_and_formats(study, capsys):
    capsys.readouterr()
    assert main(["query", str(study), "--where", "criterion == 'snip' and density < 0.1",
                 "--columns", "seed", "density", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["seed,density", "0,0.05", "1,0.05"]
    assert main(["query", str(study), "--table", "history", "--where", "epoch == 2", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 8
    # a table shows list columns (lr_milestones) as lists
    assert main(["query", str(study), "--where", "seed == 0", "--columns", "seed", "lr_milestones"]) == 0
    assert "[0.5, 0.75]" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["density", "curves", "jaccard", "update-period", "search"])
def test_plot_writes_the_figure_as_a_png(study, tmp_path, kind):
    """The command writes the figure ``study.plots.figure`` draws (what it shows: tests/study/test_plots.py)."""
    import matplotlib.pyplot as plt

    from study.plots import figure
    from study.queries import Studies
    from study.store import ParquetStore
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(study), "--kind", kind, "--out", str(out)]) == 0
    data = out.read_bytes()
    fig = figure(Studies([ParquetStore(str(study))]), kind)
    size = tuple(round(v * 110) for v in fig.get_size_inches())  # plot() saves at 110 dpi
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    plt.close(fig)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == size
    # the study varies criterion and density and recorded Jaccard rows at epoch 2: density on the x
    # axis or a panel per density; one heat-map; a panel per varying parameter of a search
    assert len(panels) == {"density": 1, "curves": 2, "update-period": 2, "jaccard": 1, "search": 2}[kind]


def test_plot_where_narrows_and_bad_output_name_is_refused(study, tmp_path, capsys):
    out = tmp_path / "snip.png"
    assert main(["plot", str(study), "--kind", "density", "--where", "criterion == 'snip'", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(study), "--kind", "density", "--where", "criterion == 'nope'", "--out", str(out)]) == 2
    assert "no completed trials to plot where criterion == 'nope'" in capsys.readouterr().err
    assert main(["plot", str(study), "--kind", "density", "--out", str(tmp_path / "x.jpg")]) == 2
    assert "expected a .png file name" in capsys.readouterr().err


def test_status_and_compact(study, capsys):
    assert main(["status", str(study)]) == 0
    assert "8 trials: 8 completed, 0 failed\n" in capsys.readouterr().out
    assert main(["compact", str(study)]) == 0
    assert "merged 8 history parts, 8 jaccard parts, 8 trials parts" in capsys.readouterr().out
    assert main(["status", str(study)]) == 0
    assert "8 trials: 8 completed" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["query", "nosuchstudy"], "unknown study 'nosuchstudy'"),
    (["query", "{study}", "--where", "densty < 0.1"], "unknown column 'densty'; did you mean 'density'"),
    (["query", "{study}", "--columns", "acc"], "unknown column(s) 'acc'"),
    (["compare", "{study}", "--metric", "acc"], "unknown column(s) 'acc'"),
])
def test_bad_input(study, capsys, args, message):
    args = [a.replace("{study}", str(study)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dst-study: error: ") and message in err


def test_non_parquet_file_in_study(study, capsys, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    (copy / "trials" / "notes.csv").write_text("a,b\n")
    assert main(["query", str(copy)]) == 2
    assert "notes.csv: not a Parquet part file" in capsys.readouterr().err


def test_corrupt_part_is_named_and_rest_loads(study, capsys, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    (copy / "trials" / "99999999999999999999-torn.parquet").write_bytes(b"PAR1\x00\x01")
    assert main(["status", str(copy)]) == 1  # still answers, but says something was skipped
    captured = capsys.readouterr()
    assert "8 trials" in captured.out and "99999999999999999999-torn.parquet" in captured.err


@pytest.mark.parametrize("command", ["status", "resume"])
def test_a_corrupt_saved_spec_is_one_line_naming_the_file(tmp_path, capsys, command):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "spec.yaml").write_text("name: [unclosed\n")
    assert main([command, str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == (f"dst-study: error: {folder}/spec.yaml: not valid YAML: expected ',' or ']', but got "
                   "'<stream end>' at line 2, column 1 (while parsing a flow sequence from line 1, column 7)\n")


def test_a_query_table_shows_a_readable_few_columns_and_says_how_to_see_all(study, capsys):
    from study.store import TRIALS
    capsys.readouterr()
    assert main(["query", str(study)]) == 0
    out, err = capsys.readouterr()
    header = out.splitlines()[0].split()
    assert [h for h in header if h != "┃"] == ["trial_id", "status", "kind", "density", "criterion", "seed",
                                              "test_accuracy_at_best_val"]  # the axes this study varies
    assert err == (f"7 of {len(TRIALS)} columns shown; --columns all shows every one, --columns NAME ... chooses "
                   "(--format csv and json hold them all)\n")
    assert main(["query", str(study), "--columns", "all"]) == 0
    assert capsys.readouterr().err == ""  # asked for
    for columns in ([], ["--columns", "all"]):  # a machine format holds every column
        assert main(["query", str(study), *columns, "--format", "csv"]) == 0
        assert len(capsys.readouterr().out.splitlines()[0].split(",")) == len(TRIALS)
