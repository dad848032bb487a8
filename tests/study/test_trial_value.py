"""A trial is a value: built and hashed once where a spec is expanded, handed on as it is."""

from dst_core import TrainConfig
from study.cli import main
from study.spec import load
from study.trial import Trial, TrialRun, result_rows, utc_now


def _count(monkeypatch, name):
    calls = []
    original = getattr(TrainConfig, name)
    function = original.__func__ if isinstance(original, classmethod) else original

    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)
    monkeypatch.setattr(TrainConfig, name, classmethod(counted) if isinstance(original, classmethod) else counted)
    return calls


def test_a_dry_run_of_the_paper_spec_builds_and_hashes_each_trial_once(monkeypatch, capsys):
    spec = "examples/mnist1d_paper_fig1.yaml"
    expected = len(load(spec).trials())  # 610: the grid's 550 DST trials and the baselines crossed with it
    hashed = _count(monkeypatch, "identity")
    built = _count(monkeypatch, "from_dict")
    checked = len(load(spec).trials())  # a fresh spec: the validation's checks, then the expansion
    validation = len(built) - expected
    assert checked == expected == 610 and len(hashed) == expected
    hashed.clear(), built.clear()
    assert main(["run", spec, "--dry-run"]) == 0
    assert "610 trials (550 DST, 55 static, 5 dense), 610 done" in capsys.readouterr().out
    assert len(hashed) == expected and len(built) == expected + validation  # the plan hashes nothing again


def test_the_worker_and_the_store_writer_hash_nothing(monkeypatch):
    trial = Trial.of(TrainConfig(epochs=1, batch_size=256, update_period=5, device="cpu"), ["density"])
    hashed = _count(monkeypatch, "identity")
    crossed = Trial.from_tune(trial.to_tune())  # what a Ray worker and the driver's writer receive
    assert crossed == trial and crossed is not trial
    run = TrialRun(crossed)
    *_, (report, _) = run.reports()
    (row,), history, _ = result_rows(crossed, report, status="completed", started_at=utc_now())
    assert row["trial_id"] == trial.id == report["dst_trial_id"] and {h["trial_id"] for h in history} == {trial.id}
    assert hashed == []
    sampled = Trial.from_tune(trial.config.to_dict(), id=report["dst_trial_id"])  # a search's, its id reported
    assert sampled.id == trial.id and hashed == []
    assert Trial.from_tune(trial.config.to_dict()).id == trial.id and len(hashed) == 1  # a search's worker
