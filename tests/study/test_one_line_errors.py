"""Inputs that printed a traceback get one line naming the problem and what is valid, exit code 2."""

import pytest

from study.cli import main
from study.store import ParquetStore

from .test_store import _trial


@pytest.fixture
def study(tmp_path):
    store = ParquetStore(str(tmp_path / "s"))
    for density in (0.1, 0.2):
        for seed in (0, 1):
            _trial(store, density=density, seed=seed)
    _trial(store, density=0.3, status="failed")
    return store.root


@pytest.mark.parametrize("argv,message", [
    (["--where", "density > 5"], "no trials to compare: the filter (--where) matches none, or the study has none yet"),
    (["--where", "status == 'failed'"], "no trials to compare: of the 1 that match, none is completed"),
    (["--metric", "host"], "--metric host: holds string values, not numbers to compare; choose a metric "
                           "(final_test_accuracy, test_accuracy_at_best_val,"),
    (["--where", "started_at > 'yesterday'"], "column 'started_at' holds times (timestamp[us, tz=UTC]), and "
                                              "'yesterday' is not a time: compare it with a 'string' such as"),
])
def test_compare_of_nothing_or_of_a_column_it_cannot_compare_is_one_line(study, argv, message, capsys):
    assert main(["compare", study, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_time_filter_with_a_real_time_still_filters(study, capsys):
    assert main(["query", study, "--where", "started_at > '2025-01-01 00:00'", "--columns", "density",
                 "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 5


def test_a_spec_that_is_not_utf8_is_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"name: x\ngrid: {density: [0.1]}\n# caf\xe9\n")
    assert main(["validate", str(spec)]) == 2
    assert capsys.readouterr().err == f"dst-study: error: {spec}: not UTF-8 text (byte 0xe9 on line 3); save the " \
                                      "spec as UTF-8\n"


def test_an_mlflow_uri_mlflow_cannot_use_is_one_line(study, tmp_path, capsys):
    pytest.importorskip("mlflow")
    assert main(["export", study, "--to", "mlflow", "foo://bar"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dst-study: error: --to mlflow foo://bar: MLflow cannot use it (") and err.count("\n") == 1
    assert "give a tracking URI such as sqlite:///mlflow.db" in err


@pytest.mark.parametrize("alpha", ["nan", "0", "1", "1.5", "-0.1"])
def test_an_alpha_outside_0_1_is_one_line(study, alpha, capsys):
    assert main(["compare", study, "--alpha", alpha]) == 2
    assert capsys.readouterr().err == f"dst-study: error: --alpha: got {float(alpha)}; expected a level between 0 and " \
                                      "1, e.g. 0.05\n"
