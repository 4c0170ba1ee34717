"""`movierec keys create|list|revoke`."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.store import Store

runner = CliRunner()


def keys(*args: str):
    return runner.invoke(app, ["keys", *args])


def test_create_prints_the_token_once_and_list_and_revoke_work(store_url):
    created = keys("create", "--scope", "write", "--label", "ci", "--store", store_url)
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert re.fullmatch(r"mrk_[0-9a-f]{12}_[\w-]{43}", token)
    key_id = token.split("_")[1]
    with Store(store_url) as st:
        assert st.verify_key(token, "read").scope == "write"

    listed = keys("list", "--store", store_url)
    assert listed.exit_code == 0
    assert key_id in listed.stdout and "write" in listed.stdout and "ci" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout

    revoked = keys("revoke", key_id, "--store", store_url)
    assert revoked.exit_code == 0 and f"revoked {key_id}" in revoked.stdout
    with Store(store_url) as st:
        assert st.list_keys()[0].revoked


def test_the_default_store_is_movierec_state_db_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOVIEREC_STORE", raising=False)
    assert keys("create", "--scope", "admin").exit_code == 0
    assert (tmp_path / "movierec-state.db").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["revoke", "nope"], "error: API key 'nope' not found"),
    (["list", "--store", "mysql://u@h/db"], "error: store URL 'mysql://u@h/db': expected"),
])
def test_errors_are_one_line(tmp_path, args, message):
    if "--store" not in args:
        args = [*args, "--store", str(tmp_path / "s.db")]
    result = keys(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_a_bad_scope_is_refused_by_the_parser(tmp_path):
    result = keys("create", "--scope", "root", "--store", str(tmp_path / "s.db"))
    assert result.exit_code == 2 and "root" in result.output
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("command", ["create", "list", "revoke"])
def test_every_option_has_help(command):
    result = keys(command, "--help")
    assert result.exit_code == 0
    assert "--store" in result.stdout and "movierec-state.db" in result.stdout
    if command == "create":
        assert "admin: also" in result.stdout and "--label" in result.stdout
