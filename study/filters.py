"""The ``--where`` filter language, parsed into a small grammar and evaluated here: never by an evaluator.

    density < 0.2 and criterion in ['snip', 'magnitude'] and not (seed == 0 or growth != 'random')

The language is: column names, literals (numbers, 'strings', True, False, None), comparisons
(``== != < <= > >=``, chained as in ``0.05 <= density < 0.2``), ``in`` / ``not in`` a list of
literals, ``and`` / ``or`` / ``not``, and parentheses. A bare column name is allowed when the column
is boolean. ``== None`` / ``!= None`` test for a missing value. Anything else (attributes, calls,
subscripts, arithmetic, ...) is refused with one line naming the part that is not allowed.
"""

from __future__ import annotations

import ast
import functools
import operator
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from dst_core.registry import did_you_mean

from .store import StoreError

__all__ = ["Filter", "LANGUAGE", "parse"]

LANGUAGE = ("column names, literals (numbers, 'strings', True, False, None), comparisons (== != < <= > >=), "
            "in / not in [list of literals], and / or / not, parentheses")
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_SHOWN = 120  # characters of a bad expression echoed in a message
# and / or / not nested deeper than this are refused, as Python refuses 200 nested parentheses: the
# checks and the evaluation recurse once per level, and a real filter is never more than a few deep
_DEPTH = 100


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


@dataclass(frozen=True)
class Filter:
    text: str
    tree: ast.expr
    names: frozenset[str]  # the columns it reads

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """The rows of ``frame`` that match, as a boolean Series."""
        result = _evaluate(self.tree, frame)
        if not isinstance(result, pd.Series):
            return pd.Series(bool(result), index=frame.index)
        return result.fillna(False).astype(bool)

    def arrow(self) -> ds.Expression | None:
        """The part Arrow can apply while scanning (it may keep more rows; :meth:`mask` is exact)."""
        return _arrow_filter(self.tree)


def parse(text: str, columns: Iterable[str], what: str = "--where",
          types: Mapping[str, pa.DataType] | None = None) -> Filter:
    """Check ``text`` against the language and the known ``columns`` (and, given their Arrow ``types``,
    that each comparison compares like with like); raise one StoreError if it fails."""
    columns = list(columns)
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise StoreError(f"{what} {_short(text)!r}: not a valid expression ({e.msg}); the filter language is "
                         f"{LANGUAGE}") from None
    except RecursionError:  # Python's own parser gives up on thousands of nested `not`
        raise StoreError(f"{what} {_short(text)!r}: not a valid expression (nested too deeply); the filter "
                         f"language is {LANGUAGE}") from None
    if _depth(tree) > _DEPTH:
        raise StoreError(f"{what} {_short(text)!r}: not a valid expression (and / or / not nested more than "
                         f"{_DEPTH} deep); the filter language is {LANGUAGE}")
    names: set[str] = set()
    _check(tree, text.strip(), columns, names, what, top=True)
    if types:
        _check_types(tree, text.strip(), types, what)
    return Filter(text, tree, frozenset(names))


def _depth(tree: ast.AST) -> int:
    """How deeply ``and`` / ``or`` / ``not`` nest in ``tree``; counted without recursion."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        depth += isinstance(node, (ast.BoolOp, ast.UnaryOp))
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    return deepest


def _kind(arrow: pa.DataType) -> str | None:
    """What a column holds, as the language sees it (None: not checked)."""
    for test, kind in ((pa.types.is_boolean, "boolean"), (pa.types.is_integer, "number"),
                       (pa.types.is_floating, "number"), (pa.types.is_string, "string"),
                       (pa.types.is_timestamp, "time"), (pa.types.is_list, "list")):
        if test(arrow):
            return kind
    return None


_HOLDS = {"boolean": "True or False", "number": "numbers", "string": "strings", "time": "times", "list": "lists"}
_LITERAL_KIND = {bool: "boolean", int: "number", float: "number", str: "string"}


def _check_types(tree: ast.AST, source: str, types: Mapping[str, pa.DataType], what: str) -> None:
    """Refuse comparisons of a column with a literal (or a column) of another kind, before anything
    is read: ``density < 'abc'`` would fail mid-evaluation and ``criterion == 5`` match nothing."""
    def refuse(column: str, reason: str) -> None:
        raise StoreError(f"{what} {_short(source)!r}: column {column!r} holds {_HOLDS[kinds[column]]} "
                         f"({types[column]}){reason}")

    kinds = {name: _kind(t) for name, t in types.items()}
    lists = ", which the filter language does not compare: only == None and != None apply to it"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, op, right in zip(operands, node.ops, operands[1:]):
            if isinstance(right, ast.Name) and not isinstance(left, ast.Name):
                left, right = right, left  # the column first
            if not isinstance(left, ast.Name) or kinds.get(left.id) is None:
                continue
            kind = kinds[left.id]
            values = right.elts if isinstance(op, (ast.In, ast.NotIn)) else [right]
            for value in values:
                if isinstance(value, ast.Name):
                    other = kinds.get(value.id)
                    if "list" in (kind, other):
                        refuse(left.id if kind == "list" else value.id, lists)
                    if other not in (None, kind):
                        refuse(left.id, f", {value.id!r} {_HOLDS[other]} ({types[value.id]}): they cannot be "
                                        "compared")
                    continue
                literal = value.operand.value if isinstance(value, ast.UnaryOp) else value.value
                if literal is None:  # == None / != None: a missing value, in any column
                    continue
                if kind == "list":
                    refuse(left.id, lists)
                example = {"boolean": "True or False", "number": "a number", "string": "a 'string'",
                           "time": "a 'string' such as '2024-05-01 12:00' (UTC)"}[kind]
                if _LITERAL_KIND[type(literal)] != kind and not (kind == "time" and isinstance(literal, str)):
                    refuse(left.id, f", not {literal!r} (a {_LITERAL_KIND[type(literal)]}): compare it with {example}")
                if kind == "time" and not _is_time(literal):
                    refuse(left.id, f", and {literal!r} is not a time: compare it with {example}")


def _is_time(text: str) -> bool:
    import pandas as pd

    try:
        pd.Timestamp(text)
    except (ValueError, TypeError):
        return False
    return True


def _literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
        return isinstance(node, ast.Constant) and type(node.value) in (int, float)
    return isinstance(node, ast.Constant) and (node.value is None or type(node.value) in (int, float, str, bool))


def _check(node: ast.AST, source: str, columns: list[str], names: set[str], what: str, top: bool = False) -> None:
    def refuse(bad: ast.AST, reason: str) -> None:
        part = ast.get_source_segment(source, bad) or type(bad).__name__
        raise StoreError(f"{what} {_short(source)!r}: {_short(part)!r} {reason}; the filter language is {LANGUAGE}")

    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, source, columns, names, what, top=True)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, source, columns, names, what, top=True)
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if isinstance(op, (ast.In, ast.NotIn)):
                right = operands[i + 1]
                if not isinstance(right, (ast.List, ast.Tuple, ast.Set)) or not all(map(_literal, right.elts)):
                    refuse(right, "is not allowed after in / not in (a list of literals is)")
            elif type(op) not in _COMPARE:
                refuse(node, "is not a comparison the language has")
        for i, operand in enumerate(operands):
            after_in = i > 0 and isinstance(node.ops[i - 1], (ast.In, ast.NotIn))
            if not after_in:
                _check(operand, source, columns, names, what)
    elif isinstance(node, ast.Name):
        if node.id not in columns:
            raise StoreError(f"{what} {_short(source)!r}: unknown column {node.id!r}"
                             f"{did_you_mean(node.id, columns)} (columns: {', '.join(columns)})")
        names.add(node.id)
    elif _literal(node):
        if top:
            refuse(node, "is a value, not a condition")
    else:
        refuse(node, "is not allowed")


def _value(node: ast.AST, frame: pd.DataFrame) -> Any:
    if isinstance(node, ast.Name):
        return frame[node.id]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_value(e, frame) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.Constant):
        return node.value
    return _evaluate(node, frame)


def _compare(op: ast.cmpop, left: Any, right: Any) -> Any:
    if isinstance(op, (ast.In, ast.NotIn)):
        hit = left.isin(right) if isinstance(left, pd.Series) else left in right
        return ~hit if isinstance(op, ast.NotIn) else hit
    if right is None or left is None:  # == None / != None test for a missing value
        value = left if right is None else right
        missing = value.isna() if isinstance(value, pd.Series) else value is None
        return missing if isinstance(op, ast.Eq) else ~missing if isinstance(op, ast.NotEq) else False
    result = _COMPARE[type(op)](left, right)
    if isinstance(result, pd.Series):  # a missing value is != anything, and matches no other comparison
        result = result.fillna(isinstance(op, ast.NotEq)).astype(bool)  # (NA in `and` / `not` raises)
    return result


def _evaluate(node: ast.AST, frame: pd.DataFrame) -> Any:
    if isinstance(node, ast.BoolOp):
        parts = [_evaluate(v, frame) for v in node.values]
        return functools.reduce(operator.and_ if isinstance(node.op, ast.And) else operator.or_, parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _evaluate(node.operand, frame)
        return ~inner.astype(bool) if isinstance(inner, pd.Series) else not inner
    if isinstance(node, ast.Compare):
        result, left = True, _value(node.left, frame)
        for op, comparator in zip(node.ops, node.comparators):
            right = _value(comparator, frame)
            result = result & _compare(op, left, right)
            left = right
        return result
    if isinstance(node, ast.Name):
        column = frame[node.id]
        if not pd.api.types.is_bool_dtype(column) and not column.dropna().map(lambda v: isinstance(v, bool)).all():
            raise StoreError(f"--where: column {node.id!r} is not boolean; compare it (e.g. {node.id} == ...)")
        return column
    raise StoreError(f"--where: cannot evaluate {type(node).__name__}")  # _check let nothing else through


_OPS = {ast.Eq: "__eq__", ast.Lt: "__lt__", ast.LtE: "__le__", ast.Gt: "__gt__", ast.GtE: "__ge__"}
_FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq}


def _arrow_filter(node: ast.AST) -> ds.Expression | None:
    """The part of a checked filter Arrow can apply while scanning, or None.

    Only ``and``/``or`` of ``column <op> literal`` (``==, <, <=, >, >=``) and ``column in [...]``:
    ``!=``, ``not`` and ``None`` are left to :meth:`Filter.mask`, which keeps rows whose value is
    missing where it should. The pushed filter may keep more rows than the expression.
    """
    if isinstance(node, ast.BoolOp):
        parts = [_arrow_filter(v) for v in node.values]
        if isinstance(node.op, ast.And):
            kept = [p for p in parts if p is not None]  # a conjunct left out only widens the filter
            return functools.reduce(operator.and_, kept) if kept else None
        return None if any(p is None for p in parts) else functools.reduce(operator.or_, parts)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, op, right = node.left, type(node.ops[0]), node.comparators[0]
        if isinstance(right, ast.Name) and isinstance(left, ast.Constant) and op in _FLIPPED:
            left, right, op = right, left, _FLIPPED[op]
        if isinstance(left, ast.Name) and isinstance(right, ast.Constant) and right.value is not None \
                and op in _OPS:
            return getattr(ds.field(left.id), _OPS[op])(right.value)
        if isinstance(left, ast.Name) and op is ast.In and isinstance(right, (ast.List, ast.Tuple)) \
                and all(isinstance(e, ast.Constant) and e.value is not None for e in right.elts):
            return ds.field(left.id).isin([e.value for e in right.elts])
    return None
