"""The composer through the command line: preview, approve, the mapping file, a drain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from socialbot.sandbox import SandboxServer
from tests.helpers import run, write_release

FIXTURES = Path(__file__).parent / "fixtures" / "releases"
REPO = Path(__file__).parents[1]


def preview_json(path: Path, *networks: str) -> dict[str, dict[str, object]]:
    args = [arg for network in networks for arg in ("--network", network)]
    result = run("preview", str(path), "--json", *args)
    assert result.exit_code == 0, result.output
    return {post["network"]: post for post in json.loads(result.stdout)}


def test_preview_json_gives_hashtags_link_and_bluesky_facets(workdir: Path):
    path = write_release(
        workdir / "queue", "r1.json", summary="The #CohesionAlliance meets.", hashtags=["EURegions"]
    )
    posts = preview_json(path)
    link = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
    for post in posts.values():
        assert post["hashtags"] == ["#CohesionAlliance", "#EURegions"]
        assert post["link"] == link
    facets = posts["bluesky"]["facets"]
    assert isinstance(facets, list)
    assert [f["features"][0].get("tag") or f["features"][0]["uri"] for f in facets] == [
        "CohesionAlliance",
        "EURegions",
        link,
    ]
    assert "facets" not in posts["x"]


def test_preview_reports_lengths_and_malformed_hashtags(workdir: Path):
    path = write_release(workdir / "queue", "r1.yaml", hashtags=["# CoRplenary"])
    result = run("preview", str(path), "--network", "x", "--network", "mastodon")
    assert result.exit_code == 0, result.output
    assert "── x ── 92/280" in result.output
    assert "── mastodon ── 92/500" in result.output
    assert "note: hashtag '# CoRplenary' is malformed; it is posted as #CoRplenary" in (
        result.output
    )


def test_an_override_over_the_limit_is_refused_by_preview_and_approve(workdir: Path):
    path = write_release(workdir / "queue", "r1.json", networks=["x"], overrides={"x": "Ж" * 270})
    shown = run("preview", str(path), "--network", "x")
    assert shown.exit_code == 1
    problem = (
        "x: the text override is 295 long as X counts it; the limit is 280, so shorten it by 15"
    )
    assert problem in shown.stderr
    approved = run("approve", "queue/r1.json", "--by", "Ana")
    assert approved.exit_code == 1
    assert problem in approved.stderr
    assert "Traceback" not in approved.output


def test_the_mapping_file_in_the_working_directory_is_used(workdir: Path):
    (workdir / "hashtags.yaml").write_text(
        "topics:\n  Cohesion policy reform: CohesionPolicy\n", encoding="utf-8"
    )
    path = write_release(workdir / "queue", "r1.json", topics=["Cohesion policy reform"])
    assert preview_json(path, "mastodon")["mastodon"]["hashtags"] == ["#CohesionPolicy"]


def test_a_named_mapping_file_and_the_utm_flag_come_from_settings(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    (workdir / "tags.yaml").write_text("topics:\n  Urban policy: Urban agenda\n", encoding="utf-8")
    monkeypatch.setenv("SOCIALBOT_HASHTAGS_FILE", "tags.yaml")
    monkeypatch.setenv("SOCIALBOT_UTM", "true")
    path = write_release(workdir / "queue", "cohesion-2027.json", topics=["Urban policy"])
    post = preview_json(path, "x")["x"]
    assert post["hashtags"] == ["#UrbanAgenda"]
    assert post["link"] == (
        "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
        "?utm_source=x&utm_medium=social&utm_campaign=cohesion-2027"
    )


def test_a_missing_or_broken_mapping_file_is_a_configuration_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    path = write_release(workdir / "queue", "r1.json")
    monkeypatch.setenv("SOCIALBOT_HASHTAGS_FILE", "absent.yaml")
    missing = run("preview", str(path))
    assert missing.exit_code == 2
    assert missing.stderr.strip() == (
        "socialbot: the hashtag mapping file absent.yaml does not exist"
    )
    (workdir / "broken.yaml").write_text("topics:\n  Cohesion: #Cohesion\n", encoding="utf-8")
    monkeypatch.setenv("SOCIALBOT_HASHTAGS_FILE", "broken.yaml")
    broken = run("preview", str(path))
    assert broken.exit_code == 2
    assert "broken.yaml: topic 'Cohesion' has no hashtag" in broken.stderr


@pytest.mark.parametrize("name", ["bg-cohesion-alliance.yaml", "fr-session-pleniere.json"])
def test_what_is_drained_is_what_preview_showed(env: Path, sandbox: SandboxServer, name: str):
    shutil.copy(REPO / "hashtags.yaml", env / "hashtags.yaml")
    shutil.copy(FIXTURES / name, env / "queue" / name)
    previewed = preview_json(env / "queue" / name)
    assert run("approve", f"queue/{name}", "--by", "Ana").exit_code == 0
    drained = run("drain")
    assert drained.exit_code == 0, drained.output
    posted = {post["network"]: post["text"] for post in sandbox.posts()}
    assert set(posted) == set(previewed)
    for network, post in previewed.items():
        assert posted[network] == post["text"], network
