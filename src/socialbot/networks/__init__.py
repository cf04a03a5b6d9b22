"""Every network socialbot knows: a profile plus an adapter, one registry line each.

``REGISTRY`` below is the one list to extend: a network is a module
``socialbot.networks.<name>`` defining ``PROFILE`` (its settings class, limits,
counting rule, capabilities, and where its adapter and sandbox live).
``socialbot.models.NETWORKS``, the CLI's choices, the settings, the composer (limits,
counting, links, hashtags, shaping), the image checks, the desk, the adapter registry
and the sandbox all read it.
"""

from __future__ import annotations

import importlib

from socialbot.networks.base import ENV_PREFIX, MEDIA_LIMITS_KEY, NetworkSettings, Profile

REGISTRY: tuple[str, ...] = (
    "x",
    "facebook",
    "mastodon",
    "bluesky",
    "linkedin",
    "telegram",
)
"""The networks, in the order posts are shown."""

PROFILES: dict[str, Profile] = {}
for _module in REGISTRY:
    _profile: Profile = importlib.import_module(f"socialbot.networks.{_module}").PROFILE
    PROFILES[_profile.name] = _profile

NETWORKS: tuple[str, ...] = tuple(PROFILES)


def profile(network: str) -> Profile:
    """The profile of ``network``; KeyError names the networks there are."""
    try:
        return PROFILES[network]
    except KeyError:
        raise KeyError(f"unknown network {network!r} (supported: {', '.join(NETWORKS)})") from None


__all__ = [
    "ENV_PREFIX",
    "MEDIA_LIMITS_KEY",
    "NETWORKS",
    "PROFILES",
    "REGISTRY",
    "NetworkSettings",
    "Profile",
    "profile",
]
