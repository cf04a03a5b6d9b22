"""The settings reference (``docs/settings.md``) and ``.env.example``, rendered from the model.

Both files are generated from :class:`socialbot.config.Settings` and its nested network
sections (each field's ``description``, default and type), so they cannot drift from the
code. ``make settings-docs`` (``python -m socialbot.settings_doc``) rewrites them;
``python -m socialbot.settings_doc --check`` exits 1 when a committed file differs, and
``tests/test_docs.py`` fails the same way.
"""

from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from socialbot.config import (
    ENV_PREFIX,
    SECTIONS_OUTSIDE_SETTINGS,
    NetworkSettings,
    Settings,
    section_model,
)

SETTINGS_MD = Path("docs") / "settings.md"
OWN_PAGES = frozenset({"desk"})
"""Nested sections that are no network: their settings are explained on ``docs/<name>.md``."""
ENV_EXAMPLE = Path(".env.example")


class UndocumentedSettingError(ValueError):
    """A field of the settings model has no description."""


@dataclass(frozen=True)
class Setting:
    """One ``SOCIALBOT_*`` variable, as the model declares it."""

    variable: str
    default: str
    description: str
    secret: bool
    credential: bool


@dataclass(frozen=True)
class Section:
    """The general settings (``name`` empty) or one network's."""

    name: str
    title: str
    settings: tuple[Setting, ...]


def render_default(value: Any) -> str:
    """A default as it is written in ``.env``: empty for "not set"."""
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ",".join(render_default(item) for item in value)
    return str(value)


def is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def describe(variable: str, field: FieldInfo) -> str:
    if not field.description:
        raise UndocumentedSettingError(
            f"{variable} has no description: give its field in src/socialbot/config.py "
            "a Field(description=...)"
        )
    return " ".join(field.description.split())


def setting(variable: str, field: FieldInfo, *, credential: bool = False) -> Setting:
    return Setting(
        variable=variable,
        default=render_default(field.get_default(call_default_factory=True)),
        description=describe(variable, field),
        secret=is_secret(field.annotation),
        credential=credential,
    )


def sections(model: type[Settings] = Settings) -> list[Section]:
    """The settings grouped as the reference shows them: general first, then each network."""
    general: list[Setting] = []
    networks: list[Section] = []
    for name, field in model.model_fields.items():
        nested = section_model(field.annotation)
        if nested is None:
            general.append(setting(f"{ENV_PREFIX}{name}".upper(), field))
            continue
        networks.append(network_section(name, nested))
    if model is Settings:
        for name, other in SECTIONS_OUTSIDE_SETTINGS.items():
            networks.append(network_section(name, other))
    return [Section("", "General", tuple(general)), *networks]


def network_section(name: str, model: type[BaseModel]) -> Section:
    credentials: tuple[str, ...] = ()
    if issubclass(model, NetworkSettings):
        credentials = model.credentials
    # Credentials first, in the order the network's class lists them; then the rest.
    order = [*credentials, *(field for field in model.model_fields if field not in credentials)]
    rows = tuple(
        setting(
            f"{ENV_PREFIX}{name}__{field}".upper(),
            model.model_fields[field],
            credential=field in credentials,
        )
        for field in order
    )
    doc = (model.__doc__ or "").strip()
    if not doc:
        raise UndocumentedSettingError(
            f"the settings class {model.__name__} ({ENV_PREFIX}{name.upper()}__*) has no "
            "docstring: its first line titles the section"
        )
    return Section(name, doc.splitlines()[0].rstrip("."), rows)


MD_HEADER = """\
# Settings

<!-- Generated from src/socialbot/config.py by `make settings-docs`; do not edit by hand.
     tests/test_docs.py fails when this file and the settings model differ. -->

socialbot reads `SOCIALBOT_*` environment variables, then `.env` in the working directory;
the environment wins over `.env`, and one network's settings may be split between the two
(for example the secrets in a systemd `EnvironmentFile=`, the rest in `.env`). Nested
settings use `__`: `SOCIALBOT_X__API_KEY` is the `api_key` of the `x` section.
`.env.example`, at the top of the repository, is generated from the same model as this
page: copy it to `.env` and fill in what you need.

- A network is **active** when its credentials are set, narrowed by `SOCIALBOT_NETWORKS`.
  Setting only part of a network's credentials is an error naming the missing variable.
- A blank value (`SOCIALBOT_X__API_KEY=`) means "not set".
- A `SOCIALBOT_*` name that is not a setting, such as `SOCIALBOT_MASTADON__ACCESS_TOKEN`, is
  refused with the closest valid name: "SOCIALBOT_MASTADON__ACCESS_TOKEN is not a setting;
  did you mean SOCIALBOT_MASTODON__ACCESS_TOKEN?". So is a wrong value, naming the variable.
  Both are configuration errors: the command exits with status 2 and does nothing.
- A whole section may be given as JSON (`SOCIALBOT_MASTODON='{"access_token": "…"}'`): it must
  be valid JSON whose keys are that section's settings, checked the same way. `.env` must be
  UTF-8 text.
- Secrets (marked *secret* below) never appear in logs, errors, tracebacks or the posting log.

`socialbot networks` checks the credentials of every active network without posting.
"""

ENV_HEADER = """\
# socialbot settings: every SOCIALBOT_* variable, with its default.
# Generated from src/socialbot/config.py by `make settings-docs`; do not edit by hand
# (docs/settings.md has the same list, with more explanation).
#
# Copy to .env (read from the working directory) or set them in the environment of the
# cron job or systemd unit; the environment wins over .env. A blank value means "not set".
# A network is active when its credentials are set: leave its lines commented to skip it.
"""


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(model: type[Settings] = Settings) -> str:
    parts = [MD_HEADER]
    for section in sections(model):
        heading = section.title if not section.name else f"{section.title} (`{section.name}`)"
        parts.append(f"\n## {heading}\n")
        if section.name in SECTIONS_OUTSIDE_SETTINGS or section.name in OWN_PAGES:
            parts.append(f"\nSee [{section.name}.md]({section.name}.md).\n")
        elif section.name:
            parts.append(
                f"\nSet-up, what is posted and what can go wrong: "
                f"[networks/{section.name}.md](networks/{section.name}.md).\n"
            )
        parts.append("\n| variable | default | meaning |\n| --- | --- | --- |\n")
        for item in section.settings:
            default = f"`{cell(item.default)}`" if item.default else ""
            meaning = cell(item.description)
            if item.credential:
                meaning += " Credential."
            if item.secret:
                meaning += " *Secret.*"
            parts.append(f"| `{item.variable}` | {default} | {meaning} |\n")
    return "".join(parts)


def render_env_example(model: type[Settings] = Settings) -> str:
    parts = [ENV_HEADER]
    for section in sections(model):
        title = section.title if not section.name else f"{section.title} ({section.name})"
        parts.append(f"\n# --- {title} " + "-" * max(3, 84 - len(title)) + "\n")
        for item in section.settings:
            for line in wrap_comment(item.description):
                parts.append(f"# {line}\n")
            parts.append(f"#{item.variable}={item.default}\n")
    return "".join(parts)


def wrap_comment(text: str, width: int = 88) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width - 2, break_long_words=False, break_on_hyphens=False)


def outputs(root: Path) -> dict[Path, str]:
    """Each generated file under ``root`` and the text the model gives it."""
    return {root / SETTINGS_MD: render_markdown(), root / ENV_EXAMPLE: render_env_example()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m socialbot.settings_doc",
        description="Write docs/settings.md and .env.example from the settings model.",
    )
    parser.add_argument("root", nargs="?", type=Path, default=Path(), help="the repository")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    args = parser.parse_args(argv)
    try:
        expected = outputs(args.root)
    except UndocumentedSettingError as exc:
        print(f"settings_doc: {exc}", file=sys.stderr)
        return 1
    stale = [
        path
        for path, text in expected.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run `make settings-docs`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
