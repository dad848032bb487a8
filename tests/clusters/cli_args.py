"""dst-study commands written in cluster configurations, checked against the real CLI."""

from __future__ import annotations

import contextlib
import io
import shlex

import pytest

from study.options import parser


def parse_cli(argv: list[str]):
    """dst-study's own argument parser on argv; a renamed subcommand or flag fails here."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"not a valid dst-study command: {shlex.join(['dst-study', *argv])}\n{err.getvalue()}")
