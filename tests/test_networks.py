"""The network registry: one profile per network, read by everything else."""

from __future__ import annotations

import pytest

from socialbot import networks
from socialbot.adapters import REGISTRY, adapter_class
from socialbot.compose import DEFAULT_LIMITS, RULES, ShapingRules, measure
from socialbot.compose.counting import NETWORK_NAMES, Budget
from socialbot.config import Settings, env_name
from socialbot.media import limits_for
from socialbot.models import NETWORKS
from socialbot.networks import PROFILES, profile
from socialbot.sandbox.server import NETWORK_SANDBOXES
from tests.helpers import fresh_python


def test_every_reader_of_networks_reads_the_registry():
    assert NETWORKS == networks.NETWORKS == tuple(PROFILES)
    assert set(REGISTRY) == set(NETWORK_SANDBOXES) == set(PROFILES)
    assert set(DEFAULT_LIMITS) == set(NETWORK_NAMES) == set(PROFILES)
    assert set(Settings.model_fields) >= set(PROFILES)


@pytest.mark.parametrize("name", list(PROFILES))
def test_a_profile_is_what_its_adapter_and_settings_say(name: str):
    found = profile(name)
    adapter = adapter_class(name)
    assert adapter.name == found.name == name
    assert adapter.idempotent == found.idempotent
    assert adapter.idempotency_window == found.idempotency_window
    assert adapter.can_find == found.can_find
    assert adapter.can_delete == found.can_delete
    assert isinstance(Settings().section(name), found.settings)
    assert DEFAULT_LIMITS[name].max_characters == found.max_characters
    assert NETWORK_NAMES[name] == found.display_name
    assert found.env_names() == [env_name(name, field) for field in found.settings.model_fields]
    assert Budget.for_network(name).max_bytes == found.max_bytes
    assert RULES[name] == ShapingRules(
        max_hashtags=found.max_hashtags, lead=found.lead, lead_length=found.lead_length
    )
    assert found.images is not None and found.images.network == name
    assert limits_for(name) is found.images


RULE_NAMES = {
    "compose/links.py": {"x", "mastodon", "bluesky"},
    "compose/shaping.py": {"mastodon", "bluesky"},
    "compose/counting.py": {"mastodon", "x"},
    "compose/twitter_text.py": {"x"},
}
"""Where a network's name may appear in code outside the registry, and why: the link
finders and counting rules of X, Mastodon and Bluesky are named after them (a profile
picks one with ``link_rule`` or ``counting``; ``"x" * n`` is a run of letters)."""


def test_what_socialbot_knows_of_a_network_is_in_its_profile():
    """Outside the networks' own modules (profile, adapter, sandbox), code asks the profile:
    a table keyed by network names anywhere else is what a new network would miss."""
    import ast
    from pathlib import Path

    root = Path(networks.__file__).parent.parent
    found = set()
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where.split("/")[0] in ("networks", "adapters", "sandbox"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and node.value in NETWORKS
                and id(node) not in docstrings
                and node.value not in RULE_NAMES.get(where, set())
            ):
                found.add(f"{where}:{node.lineno}: {node.value!r}")
    assert sorted(found) == []


def test_an_unknown_network_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="supported: x, facebook"):
        profile("myspace")


def test_counting_follows_the_profile_rule():
    text = "Café 👩‍👩‍👧 https://cor.europa.eu/en/news/Pages/a-very-long-address-indeed.aspx"
    assert measure("bluesky", text) == len(text) - 4  # the family is one grapheme
    assert measure("mastodon", text) == 5 + 2 + 23
    assert measure("x", text) == 5 + 2 + 1 + 23
    assert measure("facebook", text) == len(text.encode("utf-16-le")) // 2


def test_importing_the_registry_imports_no_network_library():
    code = (
        "import sys, socialbot.networks, socialbot.config, socialbot.models;"
        "heavy = [m for m in ('tweepy', 'requests', 'httpx', 'regex', 'socialbot.compose')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    assert fresh_python(code) == ""


def test_a_text_post_to_x_loads_no_httpx():
    """X posts through tweepy and requests; httpx is for its media uploads, made on the first.
    The drain builds X's adapter first, so what it imports delays every post to X."""
    code = (
        "import sys; from socialbot.adapters.x import XAdapter;"
        "x = XAdapter(api_key='k', api_secret='s', access_token='t', access_token_secret='u',"
        " base_url='http://127.0.0.1:9', web_url='https://x.example');"
        "x.close(); print('httpx' in sys.modules)"
    )
    assert fresh_python(code) == "False"


@pytest.mark.parametrize("attach", ["images", "card"])
def test_a_network_whose_profile_takes_no_images_gets_none(
    monkeypatch: pytest.MonkeyPatch, attach: str
):
    """``images=None`` in a profile means no image is sent there, whatever the release asks."""
    from dataclasses import replace

    from socialbot.attachments import image_count
    from socialbot.models import Release

    release = Release.model_validate(
        {
            "id": "r1",
            "title": "Regions call for a stronger cohesion policy",
            "url": "https://example.eu/press/r1",
            "language": "en",
            "summary": "The Committee adopted its opinion.",
            "images": [{"file": "plenary.jpg", "alt": "The plenary hall"}],
            "attach": attach,
        }
    )
    assert image_count(release, "bluesky") == 1
    monkeypatch.setitem(PROFILES, "bluesky", replace(PROFILES["bluesky"], images=None))
    assert image_count(release, "bluesky") == 0
