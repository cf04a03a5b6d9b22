"""One adapter per network, looked up by name.

Modules are imported on first use, so a cron run with nothing due never pays
for importing tweepy or httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

from socialbot.adapters.base import Adapter, Media, MemoryState, State, preload_tls_context
from socialbot.config import Settings
from socialbot.networks import PROFILES

REGISTRY: dict[str, str] = {name: profile.adapter for name, profile in PROFILES.items()}
"""``module:Class`` of each network's adapter, from its profile."""


def adapter_class(network: str) -> type[Adapter]:
    module_name, _, class_name = REGISTRY[network].partition(":")
    cls: type[Adapter] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_adapter(network: str, settings: Settings, **options: Any) -> Adapter:
    """Build the adapter for ``network`` from its settings section.

    ``options`` go to ``from_settings``: ``transport`` (an httpx transport) and
    ``state`` (a ``State`` for what the adapter keeps between runs).
    """
    preload_tls_context()  # the CA bundle loads on another core while the module imports
    cls = adapter_class(network)
    return cls.from_settings(settings, **options)


__all__ = [
    "REGISTRY",
    "Adapter",
    "Media",
    "MemoryState",
    "State",
    "adapter_class",
    "create_adapter",
]
