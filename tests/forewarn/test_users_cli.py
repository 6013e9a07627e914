"""``forewarn users``: the first admin, technicians and tokens from the command line."""

from __future__ import annotations

import pytest

from cloud import accounts
from cloud.accounts import AccountStore
from cloud.actions.db import create_engine_for
from forewarn.cli import main

PASSWORD = "a long enough password"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**10)
    monkeypatch.setenv("FOREWARN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FOREWARN_DATABASE_URL", raising=False)
    monkeypatch.setenv("FOREWARN_USER_PASSWORD", PASSWORD)
    return tmp_path


def _store(tmp_path) -> AccountStore:
    return AccountStore(create_engine_for(f"sqlite:///{tmp_path / 'forewarn.db'}"), lambda: 0)


def test_add_list_disable_and_sign_in(env, capsys):
    assert main(["users", "add", "Alice", "--role", "admin"]) == 0
    assert main(["users", "add", "bob", "--role", "technician"]) == 0
    assert main(["users", "disable", "bob"]) == 0
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing
    assert "admin" in listing
    assert "bob" in listing
    assert "(disabled)" in listing
    store = _store(env)
    assert store.authenticate("alice", PASSWORD) is not None
    assert store.authenticate("bob", PASSWORD) is None


def test_token_is_printed_once_and_works_until_revoked(env, capsys):
    assert main(["users", "token", "erp-sync", "--role", "dispatcher"]) == 0
    out = capsys.readouterr()
    secret = out.out.strip()
    assert secret.startswith("fw_")
    assert "not shown again" in out.err
    store = _store(env)
    principal = store.authenticate_token(secret)
    assert principal is not None
    assert principal.role.value == "dispatcher"
    assert main(["users", "tokens"]) == 0
    assert secret not in capsys.readouterr().out
    assert main(["users", "revoke", str(principal.id)]) == 0
    assert store.authenticate_token(secret) is None
    assert main(["users", "revoke", str(principal.id)]) == 1


def test_bad_input_is_a_clear_error(env, capsys, monkeypatch):
    assert main(["users", "add", "carol"]) == 0
    assert main(["users", "add", "carol"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["users", "token", "t", "--customer", "c-nobody"]) == 2
    assert "unknown customer" in capsys.readouterr().err
    monkeypatch.setenv("FOREWARN_USER_PASSWORD", "short")
    assert main(["users", "add", "dave"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["users", "add", "erin", "--role", "root"])
