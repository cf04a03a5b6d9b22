"""twitter-text's official conformance data, run against the composer's X rules.

The YAML files in ``tests/conformance/twitter-text/`` are copied unchanged
from twitter/twitter-text and read here at test time, as its README asks.
PROVENANCE.txt says which config each ``validate.yml`` section runs under:
config v2 for WeightedTweetsCounterTest, v3 for the emoji section and for
UnicodeDirectionalMarkerCounterTest (the default config).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from socialbot.compose import extract_urls, measure, parse_tweet
from socialbot.compose.twitter_text import (
    TwitterTextConfig,
    config_v3,
    extract_hashtags,
    tlds,
    x_urls,
)

DATA = Path(__file__).parent / "conformance" / "twitter-text"
WEIGHTED_SECTIONS = {
    "WeightedTweetsCounterTest": "config-v2.json",
    "WeightedTweetsWithDiscountedEmojiCounterTest": "config-v3.json",
    "UnicodeDirectionalMarkerCounterTest": "config-v3.json",
}


@cache
def suite(name: str) -> dict[str, list[dict[str, Any]]]:
    tests: dict[str, list[dict[str, Any]]] = yaml.safe_load(
        (DATA / name).read_text(encoding="utf-8")
    )["tests"]
    return tests


@cache
def config(name: str) -> TwitterTextConfig:
    return TwitterTextConfig.from_json(json.loads((DATA / name).read_text(encoding="utf-8")))


def cases(file: str, *sections: str) -> list[Any]:
    return [
        pytest.param(section, case, id=f"{section}: {case['description']}")
        for section in sections
        for case in suite(file)[section]
    ]


@pytest.mark.parametrize(("section", "case"), cases("validate.yml", *WEIGHTED_SECTIONS))
def test_weighted_length(section: str, case: dict[str, Any]):
    result = parse_tweet(case["text"], config(WEIGHTED_SECTIONS[section]))
    assert {
        "weightedLength": result.weighted_length,
        "valid": result.valid,
        "permillage": result.permillage,
        "displayRangeStart": result.display_range_start,
        "displayRangeEnd": result.display_range_end,
        "validRangeStart": result.valid_range_start,
        "validRangeEnd": result.valid_range_end,
    } == case["expected"]


@pytest.mark.parametrize(
    ("section", "case"), cases("validate.yml", "WeightedTweetsWithDiscountedEmojiCounterTest")
)
def test_measure_counts_posts_as_x_does_today(section: str, case: dict[str, Any]):
    assert measure("x", case["text"]) == case["expected"]["weightedLength"]


@pytest.mark.parametrize(("section", "case"), cases("extract.yml", "urls", "tco_urls_with_params"))
def test_extract_urls(section: str, case: dict[str, Any]):
    assert extract_urls(case["text"]) == case["expected"]


@pytest.mark.parametrize(
    ("section", "case"),
    cases("extract.yml", "urls_with_indices", "urls_with_directional_markers"),
)
def test_extract_urls_with_indices(section: str, case: dict[str, Any]):
    found = [{"url": u.url, "indices": [u.start, u.end]} for u in x_urls().extract(case["text"])]
    assert found == case["expected"]


@pytest.mark.parametrize(
    ("section", "case"), cases("extract.yml", "hashtags", "hashtags_from_astral")
)
def test_extract_hashtags(section: str, case: dict[str, Any]):
    assert [tag.tag for tag in extract_hashtags(case["text"])] == case["expected"]


@pytest.mark.parametrize(("section", "case"), cases("extract.yml", "hashtags_with_indices"))
def test_extract_hashtags_with_indices(section: str, case: dict[str, Any]):
    found = [
        {"hashtag": h.tag, "indices": [h.start, h.end]} for h in extract_hashtags(case["text"])
    ]
    assert found == case["expected"]


def test_every_listed_tld_makes_a_url():
    failures = [
        case["description"]
        for section in ("country", "generic")
        for case in suite("tlds.yml")[section]
        if extract_urls(case["text"]) != case["expected"]
    ]
    assert failures == []


def test_the_shipped_tld_list_is_the_conformance_list():
    listed = suite("tlds.yml")
    for section in ("country", "generic"):
        expected = [case["text"].removeprefix("https://twitter.") for case in listed[section]]
        assert list(tlds()[section]) == expected


def test_the_shipped_config_is_config_v3():
    assert config_v3() == config("config-v3.json")
