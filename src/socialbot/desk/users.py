"""Desk accounts, roles and sign-in throttling, kept in the store's key-value area.

Everything lives under the ``desk:`` prefix as JSON, so it works on SQLite and PostgreSQL
alike and a desk on one host shares its users with another. Passwords are argon2id hashes
(argon2-cffi); a password itself is never stored or logged.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from argon2 import PasswordHasher

from socialbot.errors import ConfigurationError
from socialbot.store import Store

PREFIX = "desk:user:"
THROTTLE = "desk:throttle:"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 10


class Role(StrEnum):
    """What a person may do in the desk."""

    AUTHOR = "author"
    """Writes and edits drafts, submits them."""
    APPROVER = "approver"
    """Approves or rejects (never a revision they wrote); may also author."""
    OPERATOR = "operator"
    """Retry, resolve, pause, resume, withdraw, retract."""
    ADMIN = "admin"
    """Manages the desk's users."""


class Can(StrEnum):
    """The actions the desk authorizes, each checked on the server."""

    EDIT = "edit"
    APPROVE = "approve"
    OPERATE = "operate"
    USERS = "users"


PERMISSIONS: dict[Role, frozenset[Can]] = {
    Role.AUTHOR: frozenset({Can.EDIT}),
    Role.APPROVER: frozenset({Can.EDIT, Can.APPROVE}),
    Role.OPERATOR: frozenset({Can.OPERATE}),
    Role.ADMIN: frozenset({Can.USERS}),
}


class UserError(ConfigurationError):
    """A user name, role or password that cannot be used (one sentence)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str
    disabled: bool = False
    sessions_after: float = 0.0
    """Sessions signed before this time (epoch seconds) no longer count (sign-out, changes)."""

    def can(self, action: Can) -> bool:
        return not self.disabled and action in PERMISSIONS[self.role]

    def to_json(self) -> str:
        data = asdict(self)
        data["role"] = self.role.value
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> User:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            role=Role(data["role"]),
            password_hash=str(data["password_hash"]),
            disabled=bool(data.get("disabled", False)),
            sessions_after=float(data.get("sessions_after", 0.0)),
        )


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise UserError(
            f"{text!r} is not a role (roles: {', '.join(r.value for r in Role)})"
        ) from None


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME.fullmatch(name):
        raise UserError(
            f"{name!r} cannot be a user name: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


class Users:
    """The desk's accounts in a store."""

    def __init__(self, store: Store, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()

    def _key(self, name: str) -> str:
        return PREFIX + name.strip().casefold()

    def get(self, name: str) -> User | None:
        text = self.store.get_value(self._key(name))
        return User.from_json(text) if text else None

    def save(self, user: User) -> None:
        self.store.set_value(self._key(user.name), user.to_json())

    def all(self) -> list[User]:
        users = []
        for text in self.store.entries(PREFIX).values():
            if text:
                users.append(User.from_json(text))
        return sorted(users, key=lambda u: u.name.casefold())

    def add(self, name: str, role: Role, password: str) -> User:
        name = check_name(name)
        if self.get(name) is not None:
            raise UserError(f"a user {name!r} already exists")
        user = User(name, role, self.hasher.hash(check_password(password)))
        self.save(user)
        return user

    def _existing(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no desk user {name!r}")
        return user

    def disable(self, name: str) -> User:
        user = replace(self._existing(name), disabled=True, sessions_after=time.time())
        self.save(user)
        return user

    def enable(self, name: str) -> User:
        user = replace(self._existing(name), disabled=False)
        self.save(user)
        return user

    def set_role(self, name: str, role: Role) -> User:
        user = replace(self._existing(name), role=role, sessions_after=time.time())
        self.save(user)
        return user

    def set_password(self, name: str, password: str) -> User:
        user = replace(
            self._existing(name),
            password_hash=self.hasher.hash(check_password(password)),
            sessions_after=time.time(),
        )
        self.save(user)
        return user

    def sign_out_everywhere(self, name: str) -> None:
        user = self.get(name)
        if user is not None:
            self.save(replace(user, sessions_after=time.time()))

    def verify(self, name: str, password: str) -> User | None:
        """The user when the password is right and the account enabled; else None.

        An unknown name costs a hash as well, so timing does not tell which names exist.
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = self.hasher
        user = self.get(name) if NAME.fullmatch(name.strip()) else None
        if user is None:
            with contextlib.suppress(VerificationError, InvalidHashError):
                hasher.verify(DUMMY_HASH, password)
            return None
        try:
            hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if user.disabled:
            return None
        if hasher.check_needs_rehash(user.password_hash):
            self.save(replace(user, password_hash=hasher.hash(password)))
        return user


DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$QXF2zr7Sndb8RFOfZoxFVQ$"
    "AdF6OnXPhx4ugFSUuPRfOt3vc7jxIpQLLoNWBV5Yeeg"
)
"""A hash of a password nobody knows: verified against when the name is unknown."""


class Throttle:
    """Failed sign-ins counted over a sliding window, three ways.

    Per account and address (``per_pair``): one place guessing one person's password waits
    soon, without locking that person out elsewhere. Per address (``per_address``): one
    place guessing many names waits. Per account from everywhere (``per_account``, much
    higher): many places guessing one password wait too.
    """

    def __init__(
        self,
        store: Store,
        *,
        per_pair: int,
        per_address: int,
        per_account: int,
        window_seconds: float,
    ) -> None:
        self.store = store
        self.per_pair = per_pair
        self.per_address = per_address
        self.per_account = per_account
        self.window = window_seconds

    def _limits(self, account: str, address: str) -> list[tuple[str, int]]:
        return [
            (f"{_account(account)}|{address}", self.per_pair),
            (f"address:{address}", self.per_address),
            (_account(account), self.per_account),
        ]

    def _failures(self, key: str, now: float) -> list[float]:
        text = self.store.get_value(THROTTLE + key)
        stamps = [float(t) for t in json.loads(text)] if text else []
        return [t for t in stamps if t > now - self.window]

    def wait(self, account: str, address: str, now: float | None = None) -> float:
        """Seconds until a sign-in may be tried again (0: now)."""
        now = time.time() if now is None else now
        waits = [0.0]
        for key, limit in self._limits(account, address):
            failures = self._failures(key, now)
            if len(failures) >= limit:
                waits.append(failures[-limit] + self.window - now)
        return max(waits)

    def failed(self, account: str, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for key, limit in self._limits(account, address):
            failures = [*self._failures(key, now), now]
            self.store.set_value(THROTTLE + key, json.dumps(failures[-max(limit, 100) :]))

    def succeeded(self, account: str, address: str) -> None:
        """Forget this place's failures for the account (not the account-wide count)."""
        self.store.set_value(THROTTLE + f"{_account(account)}|{address}", "[]")


def _account(name: str) -> str:
    return f"account:{name.strip().casefold()[:64]}"
