"""Users, roles and API tokens of the console and the API (SQLAlchemy, on the actions database).

Passwords are hashed with scrypt from the standard library (memory-hard, salted, parameters
stored with each hash so they can be raised later) — no extra dependency on small installs.
API tokens are 256-bit random strings shown once; only their SHA-256 is stored, which is enough
for a secret of that entropy and lets a request find its token with one indexed lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from cloud.actions.db import Base, CustomerRow, transaction
from cloud.errors import RejectedInput

TOKEN_PREFIX: Final = "fw_"  # noqa: S105 - a marker, not a secret
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
MIN_PASSWORD_CHARS: Final = 10
TOKEN_TOUCH_EVERY_MS: Final = 60_000  # last_used_ms is a hint, not an audit log
_USERNAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Role(StrEnum):
    """What a user or token may do; each role includes the rights of those below it."""

    READ_ONLY = "read_only"  # read devices, predictions, tickets, emails
    TECHNICIAN = "technician"  # + acknowledge, move and resolve tickets
    DISPATCHER = "dispatcher"  # + assign tickets, dead letters, previews, outbox requeue
    ADMIN = "admin"  # + users and tokens


_RANK: Final = {Role.READ_ONLY: 0, Role.TECHNICIAN: 1, Role.DISPATCHER: 2, Role.ADMIN: 3}


def role_allows(role: Role, needed: Role) -> bool:
    """>>> role_allows(Role.DISPATCHER, Role.TECHNICIAN), role_allows(Role.READ_ONLY, Role.ADMIN)
    (True, False)
    """
    return _RANK[role] >= _RANK[needed]


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    customer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("customers.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_ms: Mapped[int]


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hint: Mapped[str] = mapped_column(sa.String(16))  # first characters, to recognise it in lists
    role: Mapped[str] = mapped_column(sa.String(16))
    customer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("customers.id"))
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_ms: Mapped[int]
    last_used_ms: Mapped[int | None]
    revoked_ms: Mapped[int | None]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a signed-in user or an API token, with its role and customer scope."""

    kind: str  # user | token
    id: int
    name: str
    role: Role
    customer_id: str | None  # set: sees only this customer's devices, tickets and emails

    def allows(self, needed: Role) -> bool:
        return role_allows(self.role, needed)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    customer_id: str | None
    active: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    hint: str
    role: Role
    customer_id: str | None
    created_by: str
    created_ms: int
    last_used_ms: int | None
    revoked_ms: int | None


def hash_password(password: str) -> str:
    """A salted scrypt hash with its parameters: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Compared against when the user does not exist, so that timing does not reveal usernames.
_DUMMY_HASH: Final = hash_password(secrets.token_urlsafe(16))


class AccountStore:
    """Users and API tokens; every method is one short transaction."""

    def __init__(self, engine: Engine, clock_ms: Callable[[], int]) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock_ms = clock_ms

    # -- users ----------------------------------------------------------------------------

    def create_user(
        self, username: str, password: str, role: Role | str, customer_id: str | None = None
    ) -> User:
        role = _role(role)
        username = username.strip().lower()
        if not _USERNAME_RE.match(username):
            raise RejectedInput(
                f"username {username!r}: 2-64 characters of a-z 0-9 . _ @ -, starting with a "
                "letter or digit"
            )
        _check_password(password)
        with transaction(self._sessions) as session:
            if session.scalars(sa.select(UserRow).where(UserRow.username == username)).first():
                raise RejectedInput(f"user {username!r} exists")
            _check_customer(session, customer_id)
            row = UserRow(
                username=username,
                password_hash=hash_password(password),
                role=role.value,
                customer_id=customer_id,
                active=True,
                created_ms=self._clock_ms(),
            )
            session.add(row)
            session.flush()
            return _user(row)

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        with transaction(self._sessions) as session:
            row = self._user_row(session, username)
            row.password_hash = hash_password(password)

    def set_active(self, username: str, active: bool) -> None:
        with transaction(self._sessions) as session:
            self._user_row(session, username).active = active

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this name and password, else ``None`` (same cost either way)."""
        with transaction(self._sessions) as session:
            row = session.scalars(
                sa.select(UserRow).where(UserRow.username == username.strip().lower())
            ).first()
        if row is None:
            verify_password(password, _DUMMY_HASH)
            return None
        if not verify_password(password, row.password_hash) or not row.active:
            return None
        return _user(row)

    def user(self, user_id: int) -> User | None:
        with transaction(self._sessions) as session:
            row = session.get(UserRow, user_id)
            return None if row is None else _user(row)

    def users(self) -> list[User]:
        with transaction(self._sessions) as session:
            return [_user(r) for r in session.scalars(sa.select(UserRow).order_by(UserRow.id))]

    def count_users(self) -> int:
        with transaction(self._sessions) as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(UserRow)) or 0)

    def _user_row(self, session: sa.orm.Session, username: str) -> UserRow:
        row = session.scalars(
            sa.select(UserRow).where(UserRow.username == username.strip().lower())
        ).first()
        if row is None:
            raise RejectedInput(f"no user {username!r}")
        return row

    # -- tokens ---------------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        role: Role | str,
        customer_id: str | None = None,
        created_by: str = "cli",
    ) -> tuple[ApiToken, str]:
        """A new token and its secret; the secret is not stored and cannot be shown again."""
        role = _role(role)
        name = name.strip()
        if not 1 <= len(name) <= 100 or not name.isprintable():
            raise RejectedInput("token name: 1-100 printable characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self._sessions) as session:
            _check_customer(session, customer_id)
            row = ApiTokenRow(
                name=name,
                token_sha256=token_digest(secret),
                hint=secret[:8],
                role=role.value,
                customer_id=customer_id,
                created_by=created_by[:64],
                created_ms=self._clock_ms(),
            )
            session.add(row)
            session.flush()
            return _token(row), secret

    def authenticate_token(self, secret: str) -> Principal | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
            return None
        now = self._clock_ms()
        with transaction(self._sessions) as session:
            row = session.scalars(
                sa.select(ApiTokenRow).where(ApiTokenRow.token_sha256 == token_digest(secret))
            ).first()
            if row is None or row.revoked_ms is not None:
                return None
            if row.last_used_ms is None or now - row.last_used_ms >= TOKEN_TOUCH_EVERY_MS:
                row.last_used_ms = now
            return Principal("token", row.id, row.name, Role(row.role), row.customer_id)

    def revoke_token(self, token_id: int) -> bool:
        with transaction(self._sessions) as session:
            row = session.get(ApiTokenRow, token_id)
            if row is None or row.revoked_ms is not None:
                return False
            row.revoked_ms = self._clock_ms()
            return True

    def tokens(self) -> list[ApiToken]:
        with transaction(self._sessions) as session:
            rows = session.scalars(sa.select(ApiTokenRow).order_by(ApiTokenRow.id))
            return [_token(r) for r in rows]


def principal_of(user: User) -> Principal:
    return Principal("user", user.id, user.username, user.role, user.customer_id)


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        names = ", ".join(r.value for r in Role)
        raise RejectedInput(f"unknown role {role!r}: use one of {names}") from exc


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise RejectedInput(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > 1024:
        raise RejectedInput("password is longer than 1024 characters")


def _check_customer(session: sa.orm.Session, customer_id: str | None) -> None:
    if customer_id is not None and session.get(CustomerRow, customer_id) is None:
        raise RejectedInput(f"unknown customer {customer_id!r}")


def _user(row: UserRow) -> User:
    return User(row.id, row.username, Role(row.role), row.customer_id, row.active, row.created_ms)


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        row.id, row.name, row.hint, Role(row.role), row.customer_id, row.created_by,
        row.created_ms, row.last_used_ms, row.revoked_ms,
    )  # fmt: skip
