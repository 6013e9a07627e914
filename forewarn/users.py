"""``forewarn users``: console users and API tokens in the database of ``FOREWARN_DATABASE_URL``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.accounts import AccountStore

HELP = "create users and API tokens (the first admin, technicians, read-only portals)"
ROLES = ("admin", "dispatcher", "technician", "read_only")
PASSWORD_ENV = "FOREWARN_USER_PASSWORD"  # noqa: S105 - the variable name, not a value


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="admin", help="role (admin)")
    add.add_argument("--customer", help="limit the user to this customer's devices")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from stdin (or set {PASSWORD_ENV})",
    )
    passwd = sub.add_parser("passwd", help="set a user's password")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    for name, text in (("disable", "stop a user from signing in"), ("enable", "allow again")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("username")
    sub.add_parser("list", help="users and their roles")
    token = sub.add_parser("token", help="create an API token (printed once)")
    token.add_argument("name", help="what the token is for, e.g. 'erp-sync'")
    token.add_argument("--role", choices=ROLES, default="read_only", help="role (read_only)")
    token.add_argument("--customer", help="scope the token to this customer's devices")
    sub.add_parser("tokens", help="API tokens (never their secrets)")
    revoke = sub.add_parser("revoke", help="revoke an API token by id")
    revoke.add_argument("token_id", type=int)


def _password(args: argparse.Namespace) -> str:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("forewarn users: the passwords differ")
    return first


def _store() -> AccountStore:
    from cloud.accounts import AccountStore
    from cloud.actions.db import create_engine_for, init_schema
    from cloud.config import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings.resolved_database_url)
    init_schema(engine)
    return AccountStore(engine, lambda: time.time_ns() // 1_000_000)


def run(args: argparse.Namespace) -> int:
    from cloud.errors import RejectedInput

    store = _store()
    cmd = args.users_command
    try:
        if cmd == "add":
            user = store.create_user(args.username, _password(args), args.role, args.customer)
            print(f"created {user.role.value} {user.username!r}")
        elif cmd == "passwd":
            store.set_password(args.username, _password(args))
            print(f"password of {args.username!r} changed")
        elif cmd in ("disable", "enable"):
            store.set_active(args.username, cmd == "enable")
            print(f"{args.username!r} {cmd}d")
        elif cmd == "list":
            for u in store.users():
                scope = f" customer={u.customer_id}" if u.customer_id else ""
                state = "" if u.active else " (disabled)"
                print(f"{u.id:>4}  {u.username:<24} {u.role.value:<11}{scope}{state}")
        elif cmd == "token":
            token, secret = store.create_token(args.name, args.role, args.customer)
            print(f"token {token.id} ({token.role.value}) for {token.name!r}; store it now, "
                  "it is not shown again:", file=sys.stderr)  # fmt: skip
            print(secret)
        elif cmd == "tokens":
            for t in store.tokens():
                scope = f" customer={t.customer_id}" if t.customer_id else ""
                state = " (revoked)" if t.revoked_ms else ""
                print(f"{t.id:>4}  {t.hint}…  {t.name:<24} {t.role.value:<11}{scope}{state}")
        elif cmd == "revoke":
            if not store.revoke_token(args.token_id):
                print(f"forewarn users: no active token {args.token_id}", file=sys.stderr)
                return 1
            print(f"token {args.token_id} revoked")
    except RejectedInput as exc:
        print(f"forewarn users: {exc}", file=sys.stderr)
        return 2
    return 0
