"""Settings, read from ``SOCIALBOT_*`` environment variables and ``.env``.

Nested settings use ``__``: ``SOCIALBOT_X__API_KEY`` is ``settings.x.api_key``.
Every credential is a ``SecretStr``, so it never shows in a repr or a log line.
"""

from __future__ import annotations

import io
import json
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from socialbot.errors import ConfigurationError
from socialbot.networks import ENV_PREFIX, NETWORKS, PROFILES, NetworkSettings
from socialbot.networks.bluesky import BlueskySettings
from socialbot.networks.facebook import FacebookSettings
from socialbot.networks.linkedin import LinkedInSettings
from socialbot.networks.mastodon import MastodonSettings
from socialbot.networks.x import XSettings

# The sections of the first five networks, where they were always imported from.
__all__ = [
    "ENV_PREFIX",
    "BlueskySettings",
    "CoreSettings",
    "FacebookSettings",
    "LinkedInSettings",
    "MastodonSettings",
    "NetworkSettings",
    "Settings",
    "XSettings",
    "env_name",
    "load_settings",
]


class DeskSettings(BaseModel):
    """The desk: the web console (`socialbot desk`)."""

    secret_key: SecretStr | None = Field(
        None,
        description=(
            "Signs the desk's session cookies: a long random value (e.g. `python3 -c 'import "
            "secrets; print(secrets.token_urlsafe(48))'`). The desk refuses to start without "
            "one; `socialbot demo --desk` makes its own."
        ),
    )
    behind_https: bool = Field(
        False,
        description=(
            "The desk is served over HTTPS by a reverse proxy: session cookies are marked "
            "`Secure` (they always are when the request itself is HTTPS)."
        ),
    )
    trusted_header: str | None = Field(
        None,
        description=(
            "A header set by a reverse proxy that already signed the person in (single "
            "sign-on), e.g. `X-Remote-User`, naming a desk user. Accepted only from "
            "`SOCIALBOT_DESK__TRUSTED_PROXIES`."
        ),
    )
    trusted_proxies: str = Field(
        "",
        description=(
            "Comma list of the proxy addresses or networks (`10.0.0.5,192.0.2.0/24`) whose "
            "`SOCIALBOT_DESK__TRUSTED_HEADER` and `X-Forwarded-For` are believed (the "
            "visitor's address is the rightmost one in `X-Forwarded-For` that is not a "
            "trusted proxy); from anywhere else both are ignored."
        ),
    )
    session_hours: float = Field(
        8.0,
        gt=0,
        le=24 * 30,
        description="A sign-in lasts this many hours; then the person signs in again.",
    )
    time_zone: str = Field(
        "Europe/Brussels",
        description=(
            "The time zone the desk shows and reads times in (`not_before`, the calendar); "
            "times are stored in UTC."
        ),
    )
    sign_in_attempts: int = Field(
        5,
        ge=1,
        description=(
            "Failed sign-ins allowed for one account from one address within "
            "`SOCIALBOT_DESK__SIGN_IN_WINDOW_MINUTES`; then that account's sign-in waits at "
            "that address (elsewhere the person still signs in)."
        ),
    )
    sign_in_attempts_per_address: int = Field(
        20,
        ge=1,
        description="Failed sign-ins allowed from one address, any accounts, within the window.",
    )
    sign_in_attempts_per_account: int = Field(
        100,
        ge=1,
        description=(
            "Failed sign-ins allowed for one account from all addresses together within the "
            "window; then that account's sign-in waits everywhere. Keep it well above "
            "`SOCIALBOT_DESK__SIGN_IN_ATTEMPTS`, so that one place cannot lock a person out."
        ),
    )
    sign_in_window_minutes: float = Field(
        15.0,
        gt=0,
        description="The window over which failed sign-ins are counted.",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name such as Europe/Brussels") from None
        return value

    def proxies(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]


class CoreSettings(BaseSettings):
    """Everything socialbot reads from its environment but the networks' sections.

    ``Settings`` adds one field per network of ``socialbot.networks``, of that
    network's settings class, so adding a network never touches this file.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        # A blank line such as `SOCIALBOT_X__API_KEY=` (an .env copied from the
        # example) means "not set", not an empty credential or an empty list.
        env_ignore_empty=True,
        extra="ignore",
    )

    queue_dir: Path = Field(
        Path("queue"),
        description="Directory of release files (`*.json`, `*.yaml`, `*.yml`).",
    )
    database_url: str = Field(
        "sqlite:///socialbot.db",
        description=(
            "The store (releases, approvals, the posting log), as a `sqlite:///path` URL (the "
            "file is created readable by its owner only) or a `postgresql://user@host/db` URL."
        ),
    )
    networks: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description=(
            "Comma list that narrows the active networks, e.g. `x,facebook`. Not set: every "
            "network whose credentials are set."
        ),
    )
    run_budget_seconds: float = Field(
        default=240.0,
        gt=0,
        description=(
            "A drain starts no new work after this many seconds, so a cron run always ends."
        ),
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        description=(
            "Failed attempts, over several runs, before a delivery is marked `failed` (a dead "
            "letter)."
        ),
    )
    max_rate_limit_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Longest rate-limit wait a run sits out. A longer one ends the run for that network, "
            "and later runs wait until the network allows posting again."
        ),
    )
    reconcile_after_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "How old a send without a clear answer must be before a run looks for the post on the "
            "account, and sends again only if it is not there."
        ),
    )
    request_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Timeout of each HTTP request to a network.",
    )
    hashtags_file: Path = Field(
        Path("hashtags.yaml"),
        description=(
            "The topic → hashtag mapping file the social-media team edits. A missing file is fine "
            "unless this is set."
        ),
    )
    utm: bool = Field(
        False,
        description=(
            "Add `utm_source=<network>&utm_medium=social&utm_campaign=<release id>` to release "
            "links."
        ),
    )
    log_level: str = Field(
        "WARNING",
        description=(
            "Level of the stderr log (`DEBUG`, `INFO`, `WARNING`, `ERROR`); `-v` means INFO and "
            "`-vv` DEBUG. Secrets are always redacted."
        ),
    )
    approvals_required: int = Field(
        default=1,
        ge=1,
        le=10,
        description=(
            "How many different people must approve the same revision before it is posted; "
            "its author never counts."
        ),
    )
    problem_repeat_hours: float = Field(
        default=24.0,
        gt=0,
        description=(
            "How often a drain repeats a standing problem (a delivery waiting for a person) to "
            "cron; `socialbot status` always shows it."
        ),
    )
    desk: DeskSettings = DeskSettings()

    if TYPE_CHECKING:
        # The network sections (settings.x, settings.mastodon, ...) are added from
        # the registry below; to the type checker they are attributes of any kind.
        def __getattr__(self, name: str) -> Any: ...

    @field_validator("networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            unknown = [name for name in value if name not in NETWORKS]
            if unknown:
                raise ValueError(
                    f"unknown network {unknown[0]!r} (supported: {', '.join(NETWORKS)})"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must be a sqlite:///path or postgresql://user@host/db URL")
        # libpq splits user:password@host at the first "@", Python at the last: an unencoded
        # "@" in a password would send part of it to DNS and into error messages.
        authority = re.split(r"[/?#]", value.partition("://")[2], maxsplit=1)[0]
        if authority.count("@") > 1:
            raise ValueError(
                "the user name or password holds an '@': percent-encode it as %40 "
                "(each '@' before the one that ends the password)"
            )
        return value

    def section(self, network: str) -> NetworkSettings:
        section: NetworkSettings = getattr(self, network)
        return section

    @property
    def database_path(self) -> str:
        """The SQLite file behind ``database_url`` (``:memory:`` allowed)."""
        return self.database_url.removeprefix("sqlite:///")

    def active_networks(self) -> list[str]:
        """Networks with credentials, narrowed by ``SOCIALBOT_NETWORKS``.

        Raises ConfigurationError naming the first missing variable when a
        network has only part of its credentials.
        """
        active = []
        for name in NETWORKS:
            section = self.section(name)
            if self.networks is not None and name not in self.networks:
                continue
            if not section.is_configured():
                continue
            missing = section.missing()
            if missing:
                raise ConfigurationError(
                    f"{env_name(name, missing[0])} is not set, but other {name} "
                    "credentials are: set it or remove them"
                )
            active.append(name)
        return active

    def secret_values(self) -> list[str]:
        values = [value for name in NETWORKS for value in self.section(name).secret_values()]
        if self.desk.secret_key is not None and self.desk.secret_key.get_secret_value():
            values.append(self.desk.secret_key.get_secret_value())
        return values


def _with_networks() -> type[CoreSettings]:
    fields: dict[str, Any] = {
        name: (profile.settings, Field(default_factory=profile.settings))
        for name, profile in PROFILES.items()
    }
    made: type[CoreSettings] = create_model(
        "Settings", __base__=CoreSettings, __module__=__name__, **fields
    )
    made.__doc__ = """Everything socialbot reads from its environment, a section per network."""
    return made


if TYPE_CHECKING:
    Settings = CoreSettings
else:
    Settings = _with_networks()


class ImportSettings(BaseSettings):
    """``socialbot import``: how far one fetch may go (``SOCIALBOT_IMPORT__*``)."""

    model_config = SettingsConfigDict(
        env_prefix=f"{ENV_PREFIX}IMPORT__",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    allow_private_addresses: bool = Field(
        default=False,
        description=(
            "Let `import` fetch addresses in loopback, private, link-local or multicast ranges "
            "(an intranet, or tests). Off: the desk cannot be used to reach internal services."
        ),
    )
    max_body_bytes: int = Field(
        default=5_000_000,
        ge=1024,
        description="Largest page or feed `import` reads, after decompression, in bytes.",
    )
    page_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Wall-clock limit for fetching one page or feed."
    )
    max_items: int = Field(
        default=50, ge=1, description="At most this many items per listing or feed run."
    )
    max_redirects: int = Field(
        default=5, ge=0, le=20, description="Redirects followed per address, each re-checked."
    )


SECTIONS_OUTSIDE_SETTINGS: dict[str, type[BaseSettings]] = {"import": ImportSettings}
"""Sections read by settings classes of their own (``import`` is a Python keyword)."""


def load_import_settings(**overrides: Any) -> ImportSettings:
    """The import settings, a validation error made one plain sentence."""
    env_files(overrides.get("_env_file"))  # an unreadable .env is a sentence, not a traceback
    try:
        return ImportSettings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = "__".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{ENV_PREFIX}IMPORT__{field}: {message}") from None


def env_name(network: str, field: str) -> str:
    """The environment variable behind ``settings.<network>.<field>``."""
    return f"{ENV_PREFIX}{network}__{field}".upper()


# -- Misspelled settings ---------------------------------------------------------------
# pydantic-settings ignores SOCIALBOT_* names that match no field, so a typo such as
# SOCIALBOT_MASTADON__ACCESS_TOKEN would silently leave a network unconfigured. The valid
# names come from the model, nested sections included, so new settings need nothing here.

# Read by the tests only (``publish.CRASH_ENV``; the PostgreSQL server of tests/postgres.py);
# never settings.
NOT_SETTINGS = frozenset({"SOCIALBOT_CRASH_AT", "SOCIALBOT_TEST_POSTGRES_URL"})


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The nested settings class behind a field's annotation (``X | None`` too), if any."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def setting_names(model: type[BaseSettings] | None = None) -> list[str]:
    """Every ``SOCIALBOT_*`` variable the settings read, nested ones as ``SECTION__FIELD``."""
    names: list[str] = []
    for name, field in (model or Settings).model_fields.items():
        section = section_model(field.annotation)
        if section is None:
            names.append(f"{ENV_PREFIX}{name}".upper())
        else:
            names.extend(f"{ENV_PREFIX}{name}__{inner}".upper() for inner in section.model_fields)
    if model is None:
        for name, other in SECTIONS_OUTSIDE_SETTINGS.items():
            names.extend(f"{ENV_PREFIX}{name}__{inner}".upper() for inner in other.model_fields)
    return names


def section_models(model: type[BaseSettings] | None = None) -> dict[str, type[BaseModel]]:
    """The ``SOCIALBOT_*`` variables that take a whole section as JSON, with its class."""
    sections: dict[str, type[BaseModel]] = {}
    for name, field in (model or Settings).model_fields.items():
        section = section_model(field.annotation)
        if section is not None:
            sections[f"{ENV_PREFIX}{name}".upper()] = section
    return sections


def env_files(env_file: Any = None) -> list[tuple[str, dict[str, str | None]]]:
    """Each ``.env`` file the settings read, as (its name, its variables).

    Raises ConfigurationError for a file that cannot be read or is not UTF-8 text; the
    sentence never quotes the file's content, which holds secrets.
    """
    from dotenv import dotenv_values

    if env_file is None:
        env_file = Settings.model_config.get("env_file")
    paths = [env_file] if isinstance(env_file, str | os.PathLike) else list(env_file or ())
    found: list[tuple[str, dict[str, str | None]]] = []
    for path in paths:
        if not Path(path).is_file():
            continue
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"{path} cannot be read ({exc.strerror})") from None
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = content.count(b"\n", 0, exc.start) + 1
            raise ConfigurationError(
                f"{path} is not UTF-8 text (byte {exc.start}, on line {line}); save it as UTF-8"
            ) from None
        found.append((str(path), dotenv_values(stream=io.StringIO(text))))
    return found


def check_setting_names(env_file: Any = None) -> None:
    """Refuse a ``SOCIALBOT_*`` name, in the environment or ``.env``, that is no setting,
    and a whole section given as JSON that is not valid or has a key that is no setting."""
    known = set(setting_names())
    # A whole section as JSON (SOCIALBOT_X='{"api_key": ...}') is valid too; its keys are
    # checked like names.
    sections = section_models()
    known |= set(sections)
    known |= NOT_SETTINGS
    places: list[tuple[str, Mapping[str, str | None]]] = [("", os.environ)]
    places.extend((f" in {path}", values) for path, values in env_files(env_file))
    problems: list[str] = []
    seen: set[str] = set()
    for where, values in places:
        for raw, value in values.items():
            name = raw.upper()
            if not name.startswith(ENV_PREFIX) or name in seen:
                continue
            if name in sections:
                found = section_problems(raw, where, value, sections[name], known)
            elif name in known:
                continue
            elif name.removeprefix(ENV_PREFIX).lower() in SECTIONS_OUTSIDE_SETTINGS:
                problem = outside_section_problem(raw, where, value)
                found = [problem] if problem else []
            else:
                found = [f"{raw}{where} is not a setting; {suggest(name, known)}"]
            if found:
                seen.add(name)
                problems.extend(found)
    if problems:
        raise ConfigurationError(" ".join(problems))


def section_problems(
    raw: str, where: str, value: str | None, section: type[BaseModel], known: set[str]
) -> list[str]:
    """What is wrong with a whole section given as JSON: not JSON, or keys that are no
    setting (pydantic would drop them silently). The value itself is never quoted."""
    if not value:
        return []  # unset, as env_ignore_empty reads it
    try:
        data = json.loads(value)
    except ValueError as exc:  # a JSONDecodeError's msg never quotes the document
        reason = getattr(exc, "msg", "not JSON")
        column = getattr(exc, "pos", None)
        at = f" at character {column + 1}" if isinstance(column, int) else ""
        return [
            f"{raw}{where} is not valid JSON ({reason}{at}); give the section as a JSON "
            f"object or set each setting as {raw.upper()}__<NAME>"
        ]
    if not isinstance(data, dict):
        return []  # validation names the variable ("should be a valid dictionary")
    fields = {field.lower() for field in section.model_fields}
    problems = []
    for key in data:
        if str(key).lower() in fields:
            continue
        shown = json.dumps(str(key)[:60], ensure_ascii=False)
        flat = f"{raw}__{key}".upper()
        problems.append(f"{raw}{where} has {shown}, which is not a setting; {suggest(flat, known)}")
    return problems


def outside_section_problem(raw: str, where: str, value: str | None) -> str | None:
    """A section read by a settings class of its own, which reads only its flat names
    (``ImportSettings``: ``SOCIALBOT_IMPORT='{...}'`` would be silently ignored)."""
    if not value:
        return None
    section = raw.upper().removeprefix(ENV_PREFIX).lower()
    fields = list(SECTIONS_OUTSIDE_SETTINGS[section].model_fields)
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    given = [f for f in fields if isinstance(data, dict) and f in {str(k).lower() for k in data}]
    names = " and ".join(env_name(section, field) for field in given or fields[:1])
    return f"{raw}{where} is not read as a whole section; set {names} instead"


def suggest(name: str, known: set[str]) -> str:
    """``did you mean SOCIALBOT_...?`` with the closest valid name, compared without the prefix."""
    import difflib  # only on this error path: an idle cron run never pays for it

    stems = {candidate.removeprefix(ENV_PREFIX): candidate for candidate in known}
    close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(stems), n=1)
    if close:
        return f"did you mean {stems[close[0]]}?"
    return "see .env.example for every setting."


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one plain sentence."""
    check_setting_names(overrides.get("_env_file"))
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        # What check_setting_names did not foresee; the message names the field, never its value.
        field = re.search(r'field "([^"]+)"', str(exc))
        variable = ENV_PREFIX + (field.group(1).upper() if field else "*")
        raise ConfigurationError(f"{variable}: its value cannot be read as a setting") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        parts = [str(part) for part in error["loc"] if not isinstance(part, int)]
        variable = ENV_PREFIX + "__".join(parts).upper()
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{variable}: {message}") from None
