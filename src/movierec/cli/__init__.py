"""The `movierec` command: parses options, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

from movierec.cli import (  # noqa: F401
    _bench,
    _compare,
    _data,
    _keys,
    _lifecycle,
    _models,
    _report,
    _run,
    _serve,
    _tune,
)
from movierec.cli._app import app, parse_int_list, parse_params, print_table


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main", "parse_int_list", "parse_params", "print_table"]
