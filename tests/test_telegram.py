"""The Telegram adapter over real HTTP against the sandbox Bot API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socialbot import logs
from socialbot.adapters.telegram import TelegramAdapter
from socialbot.compose import measure
from socialbot.config import Settings, load_settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    ConfigurationError,
    PermanentError,
    RateLimited,
)
from socialbot.models import Post
from socialbot.networks import profile
from socialbot.sandbox import Fault, SandboxServer
from socialbot.sandbox.telegram import CHANNEL_ID, TelegramSandbox
from tests.helpers import run, write_release

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
TEXT = f"Regions call for a stronger #CohesionPolicy after 2027 – café ☕ {LINK}"


def bot_api(sandbox: SandboxServer) -> TelegramSandbox:
    net = sandbox.networks["telegram"]
    assert isinstance(net, TelegramSandbox)
    return net


def make_adapter(sandbox: SandboxServer, **changes: str) -> TelegramAdapter:
    credentials = {**bot_api(sandbox).credentials, **changes}
    return TelegramAdapter(
        bot_token=credentials["bot_token"],
        chat_id=credentials["chat_id"],
        base_url=bot_api(sandbox).base_url,
        timeout=5,
    )


@pytest.fixture
def adapter(sandbox: SandboxServer) -> Iterator[TelegramAdapter]:
    made = make_adapter(sandbox)
    yield made
    made.close()


def post(text: str = TEXT) -> Post:
    return Post(
        network="telegram", text=text, link=LINK, length=len(text), limit=4096, language="en"
    )


def test_publish_sends_plain_text_with_the_release_preview(
    adapter: TelegramAdapter, sandbox: SandboxServer
):
    receipt = adapter.publish(post(), key="k1")
    [stored] = sandbox.posts("telegram")
    assert stored["text"] == TEXT
    assert stored["link_preview_options"] == {"url": LINK}
    assert receipt.remote_id == f"{CHANNEL_ID}/{stored['message_id']}"
    assert receipt.url == f"https://t.me/cor_sandbox/{stored['message_id']}"
    assert stored["url"] == f"{bot_api(sandbox).base_url}/cor_sandbox/{stored['message_id']}"
    [request] = [r for r in sandbox.requests if r["network"] == "telegram"]
    assert request["path"] == f"/bot{bot_api(sandbox).credentials['bot_token']}/sendMessage"
    assert "parse_mode" not in json.loads(request["body"])


def test_check_asks_get_me(adapter: TelegramAdapter, sandbox: SandboxServer):
    assert adapter.check() == "@cor_press_bot, posting to @cor_sandbox"
    assert [r["path"].rpartition("/")[2] for r in sandbox.requests] == ["getMe"]


def test_a_wrong_token_is_an_auth_error_that_never_shows_the_token(sandbox: SandboxServer):
    made = make_adapter(sandbox, bot_token="1111111:wrong-token-for-this-bot")
    with pytest.raises(AuthError, match="BotFather") as caught:
        made.check()
    made.close()
    assert "wrong-token" not in str(caught.value)
    assert logs.redact("1111111:wrong-token-for-this-bot") == logs.MASK


def test_a_chat_the_bot_is_not_in_is_an_auth_error(sandbox: SandboxServer):
    made = make_adapter(sandbox, chat_id="@somebody_else")
    with pytest.raises(AuthError, match="administrator"):
        made.publish(post(), key="k1")
    made.close()
    assert sandbox.posts("telegram") == []


def test_429_waits_for_the_retry_after_parameter(adapter: TelegramAdapter, sandbox: SandboxServer):
    sandbox.inject("telegram", Fault(status=429, retry_after=37))
    now = datetime.now(UTC)
    with pytest.raises(RateLimited, match="retry after 37") as caught:
        adapter.publish(post(), key="k1")
    assert timedelta(seconds=35) <= caught.value.retry_at - now <= timedelta(seconds=40)
    assert caught.value.api_code == 429


def test_text_over_4096_utf16_units_is_refused_by_the_network(
    adapter: TelegramAdapter, sandbox: SandboxServer
):
    fits = "😀" * 2048  # 2048 characters, 4096 UTF-16 code units
    assert measure("telegram", fits) == 4096 == profile("telegram").max_characters
    adapter.publish(post(fits), key="k1")
    with pytest.raises(PermanentError, match="too long"):
        adapter.publish(post(fits + "a"), key="k2")


def test_a_dropped_send_is_ambiguous_and_cannot_be_looked_up(
    adapter: TelegramAdapter, sandbox: SandboxServer
):
    sandbox.inject("telegram", Fault(kind="accept-then-reset"))
    with pytest.raises(AmbiguousError):
        adapter.publish(post(), key="k1")
    assert len(sandbox.posts("telegram")) == 1
    assert not adapter.can_find
    with pytest.raises(PermanentError, match="resolve"):
        adapter.find(TEXT, datetime.now(UTC))


def test_delete_removes_the_message_and_again_is_done(
    adapter: TelegramAdapter, sandbox: SandboxServer
):
    receipt = adapter.publish(post(), key="k1")
    adapter.delete(receipt.remote_id)
    adapter.delete(receipt.remote_id)
    assert sandbox.posts("telegram") == []
    assert [p["id"] for p in bot_api(sandbox).deleted] == [receipt.remote_id]


def test_retracting_an_album_deletes_every_photo_of_it(
    adapter: TelegramAdapter, sandbox: SandboxServer
):
    from dataclasses import replace

    from tests.test_adapter_contract import approved_images

    media = approved_images("telegram", 3)
    album = replace(post(), images=tuple(m.image for m in media))
    receipt = adapter.publish(album, key="k1", media=media)
    _, _, ids = receipt.remote_id.partition("/")
    assert len(ids.split(",")) == 3, "the receipt holds every message of the album"
    assert receipt.url.endswith("/" + ids.split(",")[0])

    adapter.delete(receipt.remote_id)
    adapter.delete(receipt.remote_id)  # again: the messages are gone, which counts as done
    assert sandbox.posts("telegram") == []
    methods = [r["path"].rsplit("/", 1)[1] for r in sandbox.requests if r["network"] == "telegram"]
    assert "deleteMessages" in methods


def test_settings_take_a_channel_name_or_a_numeric_id(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_TELEGRAM__BOT_TOKEN", "123:abc-def")
    monkeypatch.setenv("SOCIALBOT_TELEGRAM__CHAT_ID", "-1001234567890")
    assert load_settings().active_networks() == ["telegram"]
    monkeypatch.setenv("SOCIALBOT_TELEGRAM__CHAT_ID", "t.me/cor")
    with pytest.raises(ConfigurationError, match="SOCIALBOT_TELEGRAM__CHAT_ID"):
        load_settings()


def test_from_settings_reads_the_three_settings(
    workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    for name, value in sandbox.settings().items():
        if name.startswith("SOCIALBOT_TELEGRAM__"):
            monkeypatch.setenv(name, value)
    assert sorted(n for n in sandbox.settings() if n.startswith("SOCIALBOT_TELEGRAM__")) == [
        "SOCIALBOT_TELEGRAM__BASE_URL",
        "SOCIALBOT_TELEGRAM__BOT_TOKEN",
        "SOCIALBOT_TELEGRAM__CHAT_ID",
        "SOCIALBOT_TELEGRAM__WEB_URL",
    ]
    made = TelegramAdapter.from_settings(Settings(request_timeout_seconds=4))
    assert made.request_timeout == 4
    assert made.check().startswith("@cor_press_bot")
    receipt = made.publish(post(), key="k1")
    assert receipt.url == sandbox.posts("telegram")[0]["url"]
    made.close()


def test_drain_posts_a_release_to_the_channel_once(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["telegram"])
    assert run("approve", "queue/r1.json", "--by", "Ana").exit_code == 0
    assert run("drain").exit_code == 0
    assert run("drain").exit_code == 0
    [stored] = sandbox.posts("telegram")
    assert LINK in stored["text"]
    rows = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert [(r["network"], r["status"]) for r in rows] == [("telegram", "posted")]
