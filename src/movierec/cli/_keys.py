"""`movierec keys create|list|revoke`: the API keys of a store (the `store` extra)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from movierec.cli._app import _friendly_errors, app, console, err_console
from movierec.errors import MissingExtraError

if TYPE_CHECKING:
    from movierec.store import Store

keys_app = typer.Typer(help="API keys of a store: create, list, revoke. Only hashes are stored.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


class Scope(StrEnum):
    """What a key may do; each scope includes the ones before it."""

    read = "read"
    write = "write"
    admin = "admin"


StoreOption = Annotated[str | None, typer.Option(
    "--store", metavar="URL", show_default=False,
    help="Store: sqlite:///FILE, postgresql://USER@HOST/DB or a file path. "
         "Default: $MOVIEREC_STORE, else movierec-state.db in the working folder.")]


def open_store(url: str | None) -> Store:
    """Open (and migrate) the store at `url`; MissingExtraError without the `store` extra."""
    try:
        from movierec.store import Store
    except ImportError as exc:
        raise MissingExtraError(f"the store needs SQLAlchemy and Alembic ({exc.name} is "
                                "missing): pip install 'movierec[store]'") from exc
    return Store(url)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys_app.command("create")
@_friendly_errors
def create(
    scope: Annotated[Scope, typer.Option(
        "--scope", help="read: recommendations; write: also store ratings and users; "
                        "admin: also reload and retrain models.")],
    label: Annotated[str, typer.Option("--label", help="A note shown by `keys list` (who, why).")]
    = "",
    store: StoreOption = None,
) -> None:
    """Create an API key and print it once: only its hash is stored."""
    with open_store(store) as st:
        token = st.create_key(scope.value, label=label)
        where = st.display_url
    console.print(token, highlight=False, soft_wrap=True)
    err_console.print(f"created a {scope.value} key in {where}; keep it now, it is not shown "
                      "again", highlight=False)


@keys_app.command("list")
@_friendly_errors
def list_(store: StoreOption = None) -> None:
    """List the keys of a store (ids, scopes, dates; never secrets)."""
    with open_store(store) as st:
        keys = st.list_keys()
    table = Table(title=f"{len(keys)} API key(s)", title_justify="left")
    for column in ("id", "scope", "label", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(key.key_id, key.scope, key.label, _when(key.created_at),
                      _when(key.revoked_at))
    console.print(table)


@keys_app.command("revoke")
@_friendly_errors
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="Key id, as `keys list` shows it.")],
    store: StoreOption = None,
) -> None:
    """Revoke a key: requests using it are refused from now on."""
    with open_store(store) as st:
        key = st.revoke_key(key_id)
    console.print(f"revoked {key.key_id} ({key.scope}) at {_when(key.revoked_at)}",
                  highlight=False)
