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
