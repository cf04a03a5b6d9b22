"""The README keeps up with the code: every command and setting is documented, and
every command, option and setting it mentions exists (after sqlite-utils' test_docs)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from socialbot.cli import cli
from socialbot.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"


def setting_names() -> list[str]:
    """Every SOCIALBOT_* variable the settings read, nested ones with ``__``."""
    names: list[str] = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names.extend(f"{ENV_PREFIX}{name}__{inner}".upper() for inner in section.model_fields)
        else:
            names.append(f"{ENV_PREFIX}{name}".upper())
    return names


def readme() -> str:
    return README.read_text(encoding="utf-8")


def documented(name: str, text: str) -> bool:
    """Named in full, or as ``__FIELD`` on a line that names its section in full."""
    if re.search(rf"\b{name}\b", text):
        return True
    section, _, field = name.rpartition("__")
    if not section:
        return False
    return any(f"`__{field}`" in line for line in text.splitlines() if f"{section}__" in line)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_is_in_the_readme(command: str):
    assert re.search(rf"`socialbot {command}\b|^\s*socialbot {command}\b", readme(), re.M), (
        f"README.md does not show `socialbot {command}`"
    )


@pytest.mark.parametrize("name", setting_names())
def test_every_setting_is_in_the_readme(name: str):
    assert documented(name, readme()), f"README.md does not document {name}"


# Read by the crash tests only; documented as such, never a setting.
TEST_HOOKS = {"SOCIALBOT_CRASH_AT"}


def test_every_setting_the_readme_names_exists():
    known = set(setting_names()) | TEST_HOOKS
    named = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]", readme()))
    prefixes = {name.rpartition("__")[0] for name in known if "__" in name}
    unknown = sorted(name for name in named if name not in known and name not in prefixes)
    assert unknown == []


def mentioned_invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, options) for each ``socialbot COMMAND ...`` in the README's code.

    Code is fenced blocks, inline spans, and indented lines; an indented line
    counts only where socialbot starts a shell command (list items continue
    with indented prose).
    """
    code = re.findall(r"```.*?```|`[^`\n]+`", text, re.S)
    code += [
        line[match.start() :]
        for line in re.findall(r"^ {4,}.*$", text, re.M)
        if (match := re.search(r"(?:^\s*|\$\(|&&\s*|\|\s*|;\s*|\s/\S*bin/)socialbot ", line))
    ]
    found = []
    for block in code:
        for match in re.finditer(r"socialbot((?: -v+)?) ([a-z][\w-]*)([^`\n|;&)#]*)", block):
            found.append((match[2], re.findall(r"(?<![\w-])--?[a-z][\w-]*", match[3])))
    return found


def test_every_command_and_option_the_readme_shows_exists():
    problems = []
    for command, options in mentioned_invocations(readme()):
        if command not in cli.commands:
            problems.append(f"socialbot {command}: no such command")
            continue
        params = cli.commands[command].params
        known = {opt for p in params if isinstance(p, click.Option) for opt in p.opts}
        known |= {"--help", "-h"}
        problems.extend(
            f"socialbot {command} {option}: no such option"
            for option in options
            if option not in known
        )
    assert problems == []


def test_the_readme_shows_the_two_commands_and_ci_runs_the_test_command():
    text = readme()
    assert "make demo" in text
    assert "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_has_the_cron_line_and_explains_its_lock():
    assert re.search(r"^\S+(\s+\S+){4}\s+.*socialbot drain$", readme(), re.M)
    assert "socialbot.db.lock" in readme()


def test_the_env_example_lists_every_setting():
    assert ENV_EXAMPLE.exists(), "the README promises .env.example"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    missing = [name for name in setting_names() if not re.search(rf"\b{name}=", text)]
    assert missing == []
