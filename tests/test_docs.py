"""The documentation keeps up with the code (after sqlite-utils' test_docs).

The README is short and points into the guide in ``docs/``. The guide documents every command and
option, and shows none that does not exist; the settings reference and ``.env.example`` are
generated from the settings model and must match it; the guide builds with ``mkdocs build
--strict``; the systemd units it describes are shipped and verify.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import click
import pytest

from socialbot import settings_doc
from socialbot.cli import cli
from socialbot.config import ENV_PREFIX, NOT_SETTINGS, Settings, setting_names

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
ENV_EXAMPLE = ROOT / ".env.example"
SYSTEMD = ROOT / "deploy" / "systemd"
README_MAX_WORDS = 1500


def readme() -> str:
    return README.read_text(encoding="utf-8")


def guide() -> str:
    """Every page of the guide, one after another."""
    pages = sorted(DOCS.rglob("*.md"))
    assert pages, "docs/ has no pages"
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def mentioned_invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, options) for each ``socialbot COMMAND ...`` in the Markdown's code.

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


def options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and "--help" not in p.opts]


# -- The README: short, the two commands, links that lead somewhere -------------------------


def test_the_readme_is_short():
    words = len(readme().split())
    assert words < README_MAX_WORDS, f"README.md has {words} words; move detail into docs/"


def test_the_readme_shows_the_two_commands_and_ci_runs_the_test_command():
    text = readme()
    assert "make demo" in text
    assert "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_says_how_the_postgresql_tests_run_and_when_they_are_skipped():
    text = readme()
    assert "SOCIALBOT_TEST_POSTGRES_URL" in text and "/usr/lib/postgresql" in text
    assert "skipped" in text


def test_every_file_the_readme_links_to_exists():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme())
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local, "the README links into no page of the guide"
    assert [link for link in local if not (ROOT / link).exists()] == []


def heading_anchors(page: Path) -> set[str]:
    """The anchors MkDocs gives a page's headings (lower case, words joined by hyphens)."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}


def test_every_section_the_readme_links_to_exists():
    links = re.findall(r"\]\(([^)#\s]+\.md)#([^)\s]+)\)", readme())
    assert links, "the README links into no section of the guide"
    missing = [
        f"{page}#{anchor}" for page, anchor in links if anchor not in heading_anchors(ROOT / page)
    ]
    assert missing == []


def test_the_readme_has_the_going_live_checklist():
    text = readme()
    assert "socialbot networks" in text
    assert re.search(r"^\s*\S+(\s+\S+){4}\s+.*socialbot drain$", text, re.M), "no cron line"
    assert "socialbot-drain.service" in text
    assert "socialbot-drain.timer" in text
    assert "journalctl" in text


@pytest.mark.parametrize("path", ["README.md", "hashtags.yaml", ".env.example", "Makefile"])
def test_every_docs_page_named_in_the_repository_exists(path: str):
    text = (ROOT / path).read_text(encoding="utf-8")
    named = set(re.findall(r"\bdocs/[\w/.-]+\.md\b", text))
    assert [name for name in sorted(named) if not (ROOT / name).is_file()] == []


# -- The guide documents every command and option, and only those ---------------------------


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_is_in_the_guide(command: str):
    assert any(name == command for name, _ in mentioned_invocations(guide())), (
        f"docs/ does not show `socialbot {command}`"
    )


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, option.opts[0])
        for name, command in sorted(cli.commands.items())
        for option in options(command)
    ],
)
def test_every_option_is_in_the_guide(command: str, option: str):
    declared = next(o for o in options(cli.commands[command]) if o.opts[0] == option)
    spellings = set(declared.opts) | set(declared.secondary_opts)
    shown = {
        opt for name, opts in mentioned_invocations(guide()) if name == command for opt in opts
    }
    assert shown & spellings, f"docs/ never shows `socialbot {command} {option}`"


@pytest.mark.parametrize("option", [o.opts[0] for o in options(cli)])
def test_every_global_option_is_in_the_guide(option: str):
    declared = next(o for o in options(cli) if o.opts[0] == option)
    text = guide()
    assert any(f"socialbot {spelling}" in text for spelling in declared.opts), (
        f"docs/ never shows `socialbot {option}`"
    )


@pytest.mark.parametrize("source", ["README.md", "docs/"])
def test_every_command_and_option_the_docs_show_exists(source: str):
    text = readme() if source == "README.md" else guide()
    problems = []
    for command, shown in mentioned_invocations(text):
        if command not in cli.commands:
            problems.append(f"socialbot {command}: no such command")
            continue
        known = {opt for o in options(cli.commands[command]) for opt in o.opts + o.secondary_opts}
        known |= {"--help", "-h"}
        group = cli.commands[command]
        if isinstance(group, click.Group):  # a subcommand's options: socialbot users add --role
            known |= {
                opt
                for sub in group.commands.values()
                for o in options(sub)
                for opt in o.opts + o.secondary_opts
            }
        problems.extend(
            f"socialbot {command} {option}: no such option"
            for option in shown
            if option not in known
        )
    assert problems == []


@pytest.mark.parametrize("source", ["README.md", "docs/"])
def test_every_setting_the_docs_name_exists(source: str):
    text = readme() if source == "README.md" else guide()
    known = set(setting_names()) | NOT_SETTINGS
    prefixes = {name.rpartition("__")[0] for name in known if "__" in name}
    named = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]", text))
    # The misspellings the settings page shows as examples of what is refused.
    refused = {"SOCIALBOT_MASTADON__ACCESS_TOKEN"}
    unknown = sorted(named - known - prefixes - refused)
    assert unknown == []


def test_the_guide_has_the_cron_line_and_explains_its_lock():
    text = (DOCS / "going-live.md").read_text(encoding="utf-8")
    assert re.search(r"^\S+(\s+\S+){4}\s+.*socialbot drain$", text, re.M)
    assert "socialbot.db.lock" in text


# -- The settings reference and .env.example are the model's -------------------------------


def test_every_setting_has_a_description():
    for section in settings_doc.sections():
        for item in section.settings:
            assert len(item.description.split()) >= 3, f"{item.variable}: describe it in a sentence"


def test_a_setting_without_a_description_is_refused():
    from pydantic import create_model

    model = cast(Any, create_model("Undocumented", __base__=Settings, shiny=(bool, False)))
    with pytest.raises(settings_doc.UndocumentedSettingError, match="SOCIALBOT_SHINY has no"):
        settings_doc.render_markdown(model)


@pytest.mark.parametrize("path", [settings_doc.SETTINGS_MD, settings_doc.ENV_EXAMPLE])
def test_the_generated_files_match_the_settings_model(path: Path):
    expected = settings_doc.outputs(ROOT)[ROOT / path]
    committed = (ROOT / path).read_text(encoding="utf-8")
    assert committed == expected, f"{path} is out of date: run `make settings-docs`"


def test_the_settings_reference_lists_every_setting():
    text = (ROOT / settings_doc.SETTINGS_MD).read_text(encoding="utf-8")
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in setting_names():
        assert f"| `{name}` |" in text
        assert re.search(rf"^#{name}=", example, re.M)


def test_the_env_example_uncommented_gives_the_defaults(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every line of .env.example, uncommented, is read back as the setting's default."""
    monkeypatch.delenv("SOCIALBOT_DATABASE_URL")
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    uncommented = [line[1:] for line in lines if line.startswith(f"#{ENV_PREFIX}")]
    assert len(uncommented) == len(setting_names())
    (workdir / ".env").write_text("\n".join(uncommented) + "\n", encoding="utf-8")
    from socialbot.config import load_settings

    assert load_settings().model_dump() == Settings(_env_file=None).model_dump()


def test_the_generator_check_mode_reports_a_stale_file(tmp_path: Path, capsys):
    assert settings_doc.main([str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert settings_doc.main([str(tmp_path)]) == 0
    assert settings_doc.main([str(tmp_path), "--check"]) == 0


# -- The guide builds, strictly ------------------------------------------------------------


def test_the_guide_builds_strictly(tmp_path: Path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: `pip install -e '.[dev]'` (or `make docs`) adds it")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "settings" / "index.html").is_file()


# -- The systemd units the guide describes --------------------------------------------------


def unit(name: str) -> str:
    return (SYSTEMD / name).read_text(encoding="utf-8")


def test_the_service_runs_one_drain_as_an_unprivileged_hardened_user():
    text = unit("socialbot-drain.service")
    for directive in (
        "Type=oneshot",
        "User=socialbot",
        "WorkingDirectory=/srv/socialbot",
        "EnvironmentFile=/etc/socialbot/socialbot.env",
        "StateDirectory=socialbot",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "UMask=0077",
    ):
        assert re.search(rf"^{re.escape(directive)}$", text, re.M), directive
    assert re.search(r"^ExecStart=\S+/socialbot drain$", text, re.M)
    timer = unit("socialbot-drain.timer")
    assert re.search(r"^Unit=socialbot-drain\.service$", timer, re.M)
    assert re.search(r"^OnCalendar=", timer, re.M)
    assert re.search(r"^WantedBy=timers\.target$", timer, re.M)


def test_the_units_verify(tmp_path: Path):
    """systemd itself reads the units: an unknown or misspelled directive fails."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    # ExecStart must name an executable that exists here: this checkout's socialbot.
    executable = Path(sys.executable).parent / "socialbot"
    service = unit("socialbot-drain.service").replace(
        "/srv/socialbot/.venv/bin/socialbot", str(executable)
    )
    (tmp_path / "socialbot-drain.service").write_text(service, encoding="utf-8")
    (tmp_path / "socialbot-drain.timer").write_text(unit("socialbot-drain.timer"), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", "socialbot-drain.service", "socialbot-drain.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_the_example_posts_in_the_release_guide_are_what_preview_prints(workdir: Path):
    """docs/releases.md shows one release on every network: each post's length and limit, and
    its text where the page shows it whole, are what ``socialbot preview`` prints today."""
    from tests.helpers import run

    shutil.copy(ROOT / "queue" / "cohesion-alliance-en.json", workdir / "queue")
    shutil.copy(ROOT / "hashtags.yaml", workdir)
    result = run("preview", "queue/cohesion-alliance-en.json", "--json")
    assert result.exit_code == 0, result.stderr
    posts = {post["network"]: post for post in json.loads(result.output)}
    page = (ROOT / "docs" / "releases.md").read_text(encoding="utf-8")
    section = page.split("### Example: one release on every network", 1)[1].split("\n## ", 1)[0]
    shown, compared = [], []
    for name, length, limit, body in re.findall(
        r"^\*\*(\w+)\*\* \((\d+)/(\d+)(.*?)(?=^\*\*|\Z)", section, re.M | re.S
    ):
        shown.append(name)
        post = posts[name.lower()]
        assert (post["length"], post["limit"]) == (int(length), int(limit)), name
        lines = [line.removeprefix("    ") for line in body.split("\n") if line.startswith("    ")]
        text = "\n\n".join(lines)
        if lines and "[…" not in text:
            assert text == post["text"], name
            compared.append(name)
    assert shown == ["X", "Facebook", "Mastodon", "Bluesky", "LinkedIn", "Telegram"]
    assert compared == ["X", "Facebook", "Mastodon", "Bluesky"]
