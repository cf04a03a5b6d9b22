"""Settings: the public SOCIALBOT_* names, .env, secrets, and one-sentence errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr, create_model

from socialbot.config import (
    FacebookSettings,
    NetworkSettings,
    Settings,
    env_name,
    load_import_settings,
    load_settings,
    setting_names,
)
from socialbot.errors import ConfigurationError
from socialbot.models import NETWORKS
from tests.helpers import run

# The names operators put in cron and systemd files, and where each lands.
PUBLIC: dict[str, tuple[str, ...]] = {
    "SOCIALBOT_QUEUE_DIR": ("queue_dir",),
    "SOCIALBOT_DATABASE_URL": ("database_url",),
    "SOCIALBOT_X__API_KEY": ("x", "api_key"),
    "SOCIALBOT_X__API_SECRET": ("x", "api_secret"),
    "SOCIALBOT_X__ACCESS_TOKEN": ("x", "access_token"),
    "SOCIALBOT_X__ACCESS_TOKEN_SECRET": ("x", "access_token_secret"),
    "SOCIALBOT_X__BASE_URL": ("x", "base_url"),
    "SOCIALBOT_FACEBOOK__PAGE_ID": ("facebook", "page_id"),
    "SOCIALBOT_FACEBOOK__PAGE_ACCESS_TOKEN": ("facebook", "page_access_token"),
    "SOCIALBOT_FACEBOOK__BASE_URL": ("facebook", "base_url"),
    "SOCIALBOT_FACEBOOK__API_VERSION": ("facebook", "api_version"),
}
VALUES = {
    "SOCIALBOT_QUEUE_DIR": "/srv/press/queue",
    "SOCIALBOT_DATABASE_URL": "sqlite:////var/lib/socialbot/log.db",
    "SOCIALBOT_X__BASE_URL": "http://proxy.internal:8080/x",
    "SOCIALBOT_FACEBOOK__BASE_URL": "http://proxy.internal:8080/fb",
    "SOCIALBOT_FACEBOOK__API_VERSION": "v23.0",
    "SOCIALBOT_FACEBOOK__PAGE_ID": "104811998472315",
}
X_CREDENTIALS = {
    "SOCIALBOT_X__API_KEY": "xk-1234",
    "SOCIALBOT_X__API_SECRET": "xs-5678",
    "SOCIALBOT_X__ACCESS_TOKEN": "xt-9012",
    "SOCIALBOT_X__ACCESS_TOKEN_SECRET": "xts-3456",
}
FACEBOOK_CREDENTIALS = {
    "SOCIALBOT_FACEBOOK__PAGE_ID": "104811998472315",
    "SOCIALBOT_FACEBOOK__PAGE_ACCESS_TOKEN": "EAAB-page-token",
}


def lookup(settings: Settings, path: tuple[str, ...]) -> object:
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_variable_sets_its_setting(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, name: str
):
    value = VALUES.get(name, f"value-of-{name.lower()}")
    monkeypatch.setenv(name, value)
    settings = load_settings()
    expected: object = Path(value) if name == "SOCIALBOT_QUEUE_DIR" else value
    assert lookup(settings, PUBLIC[name]) == expected


def test_env_name_is_the_inverse_of_the_mapping():
    for name, path in PUBLIC.items():
        if len(path) == 2:
            assert env_name(*path) == name


def test_defaults(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SOCIALBOT_DATABASE_URL")
    settings = load_settings()
    assert settings.queue_dir == Path("queue")
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_path == "socialbot.db"
    assert settings.x.base_url == "https://api.x.com"
    assert settings.facebook.base_url == "https://graph.facebook.com"
    assert settings.active_networks() == []


def test_credentials_are_secrets_that_never_show(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in {**X_CREDENTIALS, **FACEBOOK_CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    shown = repr(settings) + str(settings) + repr(settings.x) + settings.model_dump_json()
    for name, value in {**X_CREDENTIALS, **FACEBOOK_CREDENTIALS}.items():
        if name.endswith("PAGE_ID"):
            continue
        assert value not in shown, name
    assert isinstance(settings.x.api_key, SecretStr)
    assert isinstance(settings.facebook.page_access_token, SecretStr)
    assert sorted(settings.secret_values()) == sorted(
        v for k, v in {**X_CREDENTIALS, **FACEBOOK_CREDENTIALS}.items() if "PAGE_ID" not in k
    )


def test_dotenv_in_the_working_directory_is_read(workdir: Path):
    (workdir / ".env").write_text(
        "SOCIALBOT_QUEUE_DIR=releases\n"
        "SOCIALBOT_FACEBOOK__PAGE_ID=42\n"
        "SOCIALBOT_FACEBOOK__PAGE_ACCESS_TOKEN=from-dotenv\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.queue_dir == Path("releases")
    assert settings.facebook.page_id == "42"
    assert settings.active_networks() == ["facebook"]


def test_the_environment_wins_over_dotenv(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    (workdir / ".env").write_text("SOCIALBOT_QUEUE_DIR=from-dotenv\n", encoding="utf-8")
    monkeypatch.setenv("SOCIALBOT_QUEUE_DIR", "from-env")
    assert load_settings().queue_dir == Path("from-env")


def test_a_section_can_be_split_between_the_environment_and_dotenv(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    """A systemd unit holding the secrets, and .env the rest."""
    names = sorted(X_CREDENTIALS)
    (workdir / ".env").write_text(
        "".join(f"{name}={X_CREDENTIALS[name]}\n" for name in names[1:]), encoding="utf-8"
    )
    monkeypatch.setenv(names[0], X_CREDENTIALS[names[0]])
    settings = load_settings()
    assert settings.active_networks() == ["x"]
    assert sorted(settings.secret_values()) == sorted(X_CREDENTIALS.values())


def test_a_network_is_active_when_its_credentials_are_set(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    for name, value in {**X_CREDENTIALS, **FACEBOOK_CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    assert load_settings().active_networks() == ["x", "facebook"]


@pytest.mark.parametrize(
    ("narrow", "active"), [("x", ["x"]), (" Facebook , x ", ["x", "facebook"])]
)
def test_socialbot_networks_narrows_the_active_ones(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, narrow: str, active: list[str]
):
    for name, value in {**X_CREDENTIALS, **FACEBOOK_CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_NETWORKS", narrow)
    assert load_settings().active_networks() == active


def test_socialbot_networks_cannot_activate_a_network_without_credentials(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    for name, value in X_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x,facebook")
    assert load_settings().active_networks() == ["x"]


def test_an_empty_socialbot_networks_means_unset(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in X_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "")
    assert load_settings().active_networks() == ["x"]


def test_an_unknown_network_is_one_sentence(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x,myspace")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("SOCIALBOT_NETWORKS: unknown network 'myspace'")
    assert all(network in message for network in NETWORKS)
    assert "\n" not in message


@pytest.mark.parametrize("missing", sorted(X_CREDENTIALS))
def test_a_partial_credential_set_names_the_missing_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, missing: str
):
    for name, value in X_CREDENTIALS.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    settings = load_settings()
    with pytest.raises(ConfigurationError) as raised:
        settings.active_networks()
    assert str(raised.value).startswith(f"{missing} is not set")
    assert "\n" not in str(raised.value)


def test_blank_credentials_count_as_unset(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """An .env copied from the example with empty values configures nothing."""
    (workdir / ".env").write_text(
        "".join(f"{name}=\n" for name in {**X_CREDENTIALS, **FACEBOOK_CREDENTIALS}),
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.x.api_key is None
    assert settings.facebook.page_id is None
    assert settings.active_networks() == []


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("SOCIALBOT_DATABASE_URL", "mysql://db/socialbot", "postgresql://"),
        ("SOCIALBOT_X__BASE_URL", "api.x.com", "http://"),
        ("SOCIALBOT_FACEBOOK__API_VERSION", "24", "v24.0"),
        ("SOCIALBOT_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("SOCIALBOT_REQUEST_TIMEOUT_SECONDS", "soon", "number"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{name}: ")
    assert problem in message
    assert "\n" not in message


def test_base_urls_lose_their_trailing_slash(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SOCIALBOT_X__BASE_URL", "http://127.0.0.1:8765/x/")
    assert load_settings().x.base_url == "http://127.0.0.1:8765/x"


def test_the_default_graph_api_version_is_a_current_one():
    """Meta retires a version about two years after its release (v22.0: January 2025)."""
    version = FacebookSettings().api_version
    major, minor = (int(part) for part in version.removeprefix("v").split("."))
    assert (major, minor) >= (22, 0)


def test_the_other_settings_read_their_variables(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    values = {
        "SOCIALBOT_RUN_BUDGET_SECONDS": "90",
        "SOCIALBOT_MAX_ATTEMPTS": "3",
        "SOCIALBOT_MAX_RATE_LIMIT_WAIT_SECONDS": "5",
        "SOCIALBOT_REQUEST_TIMEOUT_SECONDS": "12.5",
        "SOCIALBOT_HASHTAGS_FILE": "tags.yaml",
        "SOCIALBOT_UTM": "true",
        "SOCIALBOT_LOG_LEVEL": "info",
        "SOCIALBOT_X__WEB_URL": "https://twitter.com",
        "SOCIALBOT_FACEBOOK__WEB_URL": "https://m.facebook.com",
        "SOCIALBOT_MASTODON__ACCESS_TOKEN": "m-token",
        "SOCIALBOT_MASTODON__VISIBILITY": "unlisted",
        "SOCIALBOT_BLUESKY__HANDLE": "cor.bsky.social",
        "SOCIALBOT_BLUESKY__APP_PASSWORD": "abcd-efgh-ijkl-mnop",
        "SOCIALBOT_LINKEDIN__ACCESS_TOKEN": "li-token",
        "SOCIALBOT_LINKEDIN__AUTHOR": "urn:li:organization:5515715",
        "SOCIALBOT_LINKEDIN__API_VERSION": "202509",
        "SOCIALBOT_LINKEDIN__TOKEN_EXPIRES": "2026-03-01",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.run_budget_seconds, s.max_attempts, s.max_rate_limit_wait_seconds) == (90, 3, 5)
    assert (s.request_timeout_seconds, s.hashtags_file, s.utm) == (12.5, Path("tags.yaml"), True)
    assert s.log_level == "info"
    assert (s.x.web_url, s.facebook.web_url) == ("https://twitter.com", "https://m.facebook.com")
    assert s.mastodon.visibility == "unlisted"
    assert s.bluesky.handle == "cor.bsky.social"
    assert s.linkedin.author == "urn:li:organization:5515715"
    assert s.linkedin.api_version == "202509"
    assert s.linkedin.token_expires == date(2026, 3, 1)
    assert s.active_networks() == ["mastodon", "bluesky", "linkedin"]


# -- A misspelled SOCIALBOT_* name is refused with the closest valid one ----------------

MISSPELLED = [
    ("SOCIALBOT_MASTADON__ACCESS_TOKEN", "SOCIALBOT_MASTODON__ACCESS_TOKEN"),
    ("SOCIALBOT_X__APIKEY", "SOCIALBOT_X__API_KEY"),
    ("SOCIALBOT_DATABSE_URL", "SOCIALBOT_DATABASE_URL"),
    ("SOCIALBOT_LINKEDIN__TOKEN_EXPIRY", "SOCIALBOT_LINKEDIN__TOKEN_EXPIRES"),
    ("SOCIALBOT_BLUESKY__APPPASSWORD", "SOCIALBOT_BLUESKY__APP_PASSWORD"),
]


@pytest.mark.parametrize(("wrong", "meant"), MISSPELLED)
def test_a_misspelled_variable_in_the_environment_names_the_setting(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, wrong: str, meant: str
):
    monkeypatch.setenv(wrong, "s3cret-value")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert str(raised.value) == f"{wrong} is not a setting; did you mean {meant}?"


@pytest.mark.parametrize(("wrong", "meant"), MISSPELLED)
def test_a_misspelled_variable_in_dotenv_names_the_setting_and_the_file(
    workdir: Path, wrong: str, meant: str
):
    (workdir / ".env").write_text(f"SOCIALBOT_QUEUE_DIR=queue\n{wrong}=s3cret-value\n")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert str(raised.value) == f"{wrong} in .env is not a setting; did you mean {meant}?"


def test_a_misspelled_variable_through_the_cli_is_a_usage_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_MASTADON__ACCESS_TOKEN", "s3cret-value")
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr == (
        "socialbot: SOCIALBOT_MASTADON__ACCESS_TOKEN is not a setting; "
        "did you mean SOCIALBOT_MASTODON__ACCESS_TOKEN?\n"
    )
    assert "s3cret-value" not in result.output


def test_a_misspelled_variable_in_dotenv_through_the_cli_is_a_usage_error(workdir: Path):
    (workdir / ".env").write_text("SOCIALBOT_X__APIKEY=s3cret-value\n")
    result = run("drain")
    assert result.exit_code == 2
    assert "SOCIALBOT_X__APIKEY in .env is not a setting" in result.stderr
    assert "did you mean SOCIALBOT_X__API_KEY?" in result.stderr
    assert "s3cret-value" not in result.output


def test_a_name_far_from_every_setting_points_at_the_list(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_ZQXJ", "1")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert (
        str(raised.value) == "SOCIALBOT_ZQXJ is not a setting; see .env.example for every setting."
    )


def test_every_problem_is_named_once(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SOCIALBOT_X__APIKEY", "a")
    (workdir / ".env").write_text("SOCIALBOT_X__APIKEY=a\nSOCIALBOT_DATABSE_URL=sqlite:///b\n")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.count("SOCIALBOT_X__APIKEY") == 1
    assert "SOCIALBOT_DATABSE_URL in .env is not a setting" in message
    assert "\n" not in message


def test_lower_case_names_are_checked_as_pydantic_settings_reads_them(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("socialbot_x__api_key", "xk")
    monkeypatch.setenv("socialbot_x__apikey", "xk")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert str(raised.value) == (
        "socialbot_x__apikey is not a setting; did you mean SOCIALBOT_X__API_KEY?"
    )


def test_every_valid_name_and_the_test_hook_pass(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """Names come from the model, nested sections included, so new settings need no list."""
    names = setting_names()
    assert "SOCIALBOT_MASTODON__ACCESS_TOKEN" in names
    assert "SOCIALBOT_LINKEDIN__TOKEN_EXPIRES" in names
    (workdir / ".env").write_text("".join(f"{name}=\n" for name in names))
    monkeypatch.setenv("SOCIALBOT_CRASH_AT", "never")
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x")
    assert load_settings().active_networks() == []


def test_the_names_follow_the_model(monkeypatch: pytest.MonkeyPatch):
    """A section added to the model (the next network) is known without any other edit."""

    class ExtraSettings(NetworkSettings):
        """A network added later."""

        credentials = ("bot_token",)
        bot_token: SecretStr | None = None
        base_url: str = "https://api.example.org"

    model = cast(
        Any, create_model("WithExtra", __base__=Settings, extra=(ExtraSettings, ExtraSettings()))
    )
    names = setting_names(model)
    assert "SOCIALBOT_EXTRA__BOT_TOKEN" in names
    assert "SOCIALBOT_EXTRA__BASE_URL" in names
    assert set(setting_names(Settings)) < set(names)


# -- A whole section as JSON, and a .env that cannot be read --------------------------


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        (
            "SOCIALBOT_TELEGRAM",
            '{"bot_token": "s3cret-value", "chat_id": ',
            "SOCIALBOT_TELEGRAM is not valid JSON (Expecting value at character 42)",
        ),
        (
            "SOCIALBOT_DESK",
            '{"secret_key": "s3cret-value"',
            "SOCIALBOT_DESK is not valid JSON (Expecting ',' delimiter at character 30)",
        ),
    ],
)
@pytest.mark.parametrize("place", ["environment", ".env"])
def test_a_section_that_is_not_json_is_a_usage_error_that_quotes_nothing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, sentence: str, place: str
):
    if place == ".env":
        (workdir / ".env").write_text(f"{name}='{value}'\n")
        sentence = sentence.replace(" is not", " in .env is not")
    else:
        monkeypatch.setenv(name, value)
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr == (
        f"socialbot: {sentence}; give the section as a JSON object or set each setting as "
        f"{name}__<NAME>\n"
    )
    assert "s3cret-value" not in result.output


def test_a_dotenv_that_is_not_utf8_is_a_usage_error_that_quotes_nothing(workdir: Path):
    (workdir / ".env").write_bytes(
        b"SOCIALBOT_QUEUE_DIR=queue\nSOCIALBOT_X__API_KEY=caf\xe9s3cret\n"
    )
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr == (
        "socialbot: .env is not UTF-8 text (byte 50, on line 2); save it as UTF-8\n"
    )
    assert "s3cret" not in result.output
    with pytest.raises(ConfigurationError, match=r"^\.env is not UTF-8 text \(byte 50"):
        load_import_settings()


@pytest.mark.parametrize("place", ["environment", ".env"])
def test_a_misspelled_key_in_a_json_section_names_the_setting(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, place: str
):
    value = '{"acess_token": "s3cret-value", "base_url": "https://mastodon.social"}'
    where = ""
    if place == ".env":
        (workdir / ".env").write_text(f"SOCIALBOT_MASTODON='{value}'\n")
        where = " in .env"
    else:
        monkeypatch.setenv("SOCIALBOT_MASTODON", value)
    result = run("networks")
    assert result.exit_code == 2
    assert result.stderr == (
        f'socialbot: SOCIALBOT_MASTODON{where} has "acess_token", which is not a setting; '
        "did you mean SOCIALBOT_MASTODON__ACCESS_TOKEN?\n"
    )
    assert "s3cret-value" not in result.output


def test_valid_keys_in_a_json_section_pass_in_any_case(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    """pydantic-settings reads the keys without regard to case; so does the check."""
    monkeypatch.setenv(
        "SOCIALBOT_MASTODON", '{"ACCESS_TOKEN": "tok", "base_url": "https://m.example"}'
    )
    monkeypatch.setenv("SOCIALBOT_DESK", '{"secret_key": "k", "Session_Hours": 2}')
    settings = load_settings()
    assert settings.mastodon.access_token.get_secret_value() == "tok"
    assert settings.desk.session_hours == 2


def test_the_import_section_as_json_is_refused_as_it_would_be_ignored(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_IMPORT", '{"allow_private_addresses": true}')
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr == (
        "socialbot: SOCIALBOT_IMPORT is not read as a whole section; set "
        "SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES instead\n"
    )
    monkeypatch.setenv("SOCIALBOT_IMPORT", "")  # blank means unset, as everywhere
    monkeypatch.setenv("SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES", "true")
    assert run("status").exit_code == 0
    assert load_import_settings().allow_private_addresses is True
