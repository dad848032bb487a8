"""The --where language: what it accepts, what it answers, and that nothing else ever runs."""

import pandas as pd
import pytest

from study.filters import parse
from study.store import StoreError

COLUMNS = ["criterion", "density", "seed", "nesterov", "error"]
FRAME = pd.DataFrame({"criterion": ["snip", "magnitude", "set", None], "density": [0.05, 0.1, 0.2, 0.5],
                      "seed": [0, 1, 2, 3], "nesterov": [True, False, True, True],
                      "error": [None, "boom", None, None]})


@pytest.mark.parametrize("where,rows", [
    ("criterion == 'snip'", [0]),
    ("density < 0.2 and criterion in ['snip', 'magnitude']", [0, 1]),
    ("0.05 < density <= 0.2", [1, 2]),
    ("not (seed == 0 or density > 0.15)", [1]),
    ("criterion not in ('snip', 'set')", [1, 3]),
    ("criterion != 'snip'", [1, 2, 3]),  # a missing value is not 'snip'
    ("error == None", [0, 2, 3]),
    ("error != None", [1]),
    ("nesterov", [0, 2, 3]),
    ("not nesterov and seed >= 1", [1]),
    ("seed > -1 and 0.5 == density", [3]),
])
def test_the_language_answers_as_written(where, rows):
    f = parse(where, COLUMNS)
    assert list(FRAME.index[f.mask(FRAME)]) == rows


@pytest.mark.parametrize("where,fragment", [
    # the chain that reached os.system through DataFrame.query, and its relatives
    ("criterion.__class__.__mro__[-1].__subclasses__()",
     "'criterion.__class__.__mro__[-1].__subclasses__()' is not allowed"),
    ("__import__('os').system('touch /tmp/pwned')", "is not allowed"),
    ("@pd.io.common.os.system('id')", "not a valid expression"),
    ("density.max() > 0", "'density.max()' is not allowed"),
    ("criterion[0] == 's'", "'criterion[0]' is not allowed"),
    ("density * 2 < 1", "'density * 2' is not allowed"),
    ("seed in range(3)", "'range(3)' is not allowed after in / not in"),
    ("seed in [0, seed]", "is not allowed after in / not in"),
    ("lambda: 0", "is not allowed"),
    ("density < 0.2 and 1", "'1' is a value, not a condition"),
    ("seed is None", "is not a comparison the language has"),
    ("[x for x in seed]", "is not allowed"),
])
def test_everything_outside_the_language_is_refused(where, fragment, tmp_path):
    with pytest.raises(StoreError) as info:
        parse(where, COLUMNS)
    message = str(info.value)
    assert fragment in message and "the filter language is" in message and message.count("\n") == 0
    assert not (tmp_path / "pwned").exists()


def test_unknown_columns_and_long_input_are_named_briefly():
    with pytest.raises(StoreError, match="unknown column 'densty'; did you mean 'density'"):
        parse("densty < 0.1", COLUMNS)
    with pytest.raises(StoreError) as info:
        parse("seed == 1 and " * 10_000 + "density.x", COLUMNS)
    assert len(str(info.value)) < 1000  # megabytes of input are not echoed back


def test_library_query_uses_the_same_language(tmp_path):
    from study.queries import query
    from study.store import ParquetStore

    from .test_store import _trial
    store = ParquetStore(str(tmp_path))
    _trial(store, density=0.1)
    with pytest.raises(StoreError, match="is not allowed"):
        query(store, where="density.__class__ == 1")
    assert len(query(store, where="density == 0.1")) == 1


def test_a_long_chain_of_not_is_refused_like_deep_parentheses():
    frame = pd.DataFrame({"seed": [0, 1]})
    assert list(parse("not " * 100 + "seed == 0", COLUMNS).mask(frame)) == [True, False]
    for depth, fragment in ((101, "and / or / not nested more than 100 deep"), (5000, "nested too deeply")):
        with pytest.raises(StoreError) as info:
            parse("not " * depth + "seed == 0", COLUMNS)
        message = str(info.value)
        assert f"not a valid expression ({fragment}" in message and message.count("\n") == 0 and len(message) < 1000


@pytest.mark.parametrize("where,fragment", [
    ("density < 'abc'", "column 'density' holds numbers (double), not 'abc' (a string): compare it with a number"),
    ("criterion > 5", "column 'criterion' holds strings (string), not 5 (a number): compare it with a 'string'"),
    ("5 < criterion", "column 'criterion' holds strings (string), not 5 (a number)"),
    ("criterion == 5", "not 5 (a number)"),  # would match nothing, silently
    ("seed in [0, 'x']", "column 'seed' holds numbers (int64), not 'x' (a string)"),
    ("seed == True", "not True (a boolean)"),
    ("nesterov == 1", "column 'nesterov' holds True or False (bool), not 1 (a number)"),
    ("lr_milestones == 1", "column 'lr_milestones' holds lists (list<item: double>), which the filter language "
                           "does not compare: only == None and != None apply to it"),
    ("lr_milestones == seed", "column 'lr_milestones' holds lists"),
    ("criterion < density", "column 'criterion' holds strings (string), 'density' numbers (double): they cannot "
                            "be compared"),
    ("started_at > 5", "compare it with a 'string' such as '2024-05-01 12:00'"),
])
def test_comparing_unlike_types_is_one_line_before_anything_is_read(where, fragment):
    from study.store import TRIALS
    with pytest.raises(StoreError) as info:
        parse(where, TRIALS.names, types=dict(zip(TRIALS.names, TRIALS.types)))
    assert fragment in str(info.value) and str(info.value).count("\n") == 0


@pytest.mark.parametrize("command", [["query"], ["compare"], ["plot", "--kind", "density", "--out", "x.png"]])
@pytest.mark.parametrize("where", ["density < 'abc'", "criterion > 5", "lr_milestones == 1",
                                   "not " * 5000 + "seed == 0"])
def test_bad_filters_are_one_line_and_exit_code_2_in_every_command(tmp_path, capsys, monkeypatch, command, where):
    from study.cli import main
    from study.store import ParquetStore

    from .test_store import _trial
    _trial(ParquetStore(str(tmp_path / "s")), density=0.1)
    monkeypatch.chdir(tmp_path)
    assert main([command[0], str(tmp_path / "s"), *command[1:], "--where", where]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dst-study: error: --where") and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_times_and_missing_values_compare_as_before():
    from study.store import TRIALS
    types = dict(zip(TRIALS.names, TRIALS.types))
    for where in ("started_at > '2024-01-01'", "lr_milestones == None", "error != None", "0.05 <= density < 0.2",
                  "seed > -1", "criterion in ['snip', None]"):
        parse(where, TRIALS.names, types=types)


def test_missing_values_of_the_stores_typed_columns_answer_as_documented(tmp_path):
    # the store reads strings and integers as pandas' nullable types, whose comparisons give NA
    frame = pd.DataFrame({"growth": pd.array(["random", None, "gradient"], dtype="string[pyarrow]"),
                          "seed": pd.array([1, 1, None], dtype="Int64")})
    for where, rows in (("growth != 'gradient'", [0, 1]), ("seed == 1 and growth != 'gradient'", [0, 1]),
                        ("not growth == 'gradient'", [0, 1]), ("seed != 1", [2]), ("growth == None", [1])):
        assert list(frame.index[parse(where, ["growth", "seed"]).mask(frame)]) == rows, where
