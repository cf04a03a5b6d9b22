"""What was imported before: identity key -> release id, language, group of versions.

``ImportLedger`` is what ``run_import`` needs. ``KeyValueLedger`` implements it over any
store offering three methods (``KeyValue``); ``MemoryKeyValue`` is a dict, for tests and
dry runs. Keys used:

* ``import:url:<identity key>`` -> the entry, as JSON;
* ``import:release:<release id>`` -> the same entry;
* ``import:group:<group id>:<release id>`` -> ``""`` (the group's members).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True)
class LedgerEntry:
    """One imported release: its id, language, group and canonical address.

    ``group`` is the id of the first imported language version; every version of one
    release shares it, and the draft's ``version_of`` is it (None for the first one).
    """

    release_id: str
    language: str
    group: str
    url: str


class KeyValue(Protocol):
    """The three methods a store provides for the ledger."""

    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...
    def entries(self, prefix: str) -> dict[str, str]: ...


class ImportLedger(Protocol):
    """What run_import asks of the record of past imports."""

    def find(self, key: str) -> LedgerEntry | None:
        """The entry recorded under an identity key (see canonical.identity_key)."""
        ...

    def release(self, release_id: str) -> LedgerEntry | None:
        """The entry of a release id, if an import made it."""
        ...

    def record(self, keys: Sequence[str], entry: LedgerEntry) -> None:
        """Remember ``entry`` under every identity key in ``keys``."""
        ...

    def members(self, group: str) -> list[LedgerEntry]:
        """Every release of one group of language versions."""
        ...


class KeyValueLedger:
    """ImportLedger over a KeyValue store."""

    def __init__(self, store: KeyValue) -> None:
        self._store = store

    def find(self, key: str) -> LedgerEntry | None:
        return _load(self._store.get_value(f"import:url:{key}"))

    def release(self, release_id: str) -> LedgerEntry | None:
        return _load(self._store.get_value(f"import:release:{release_id}"))

    def record(self, keys: Sequence[str], entry: LedgerEntry) -> None:
        value = json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True)
        for key in dict.fromkeys(keys):
            self._store.set_value(f"import:url:{key}", value)
        self._store.set_value(f"import:release:{entry.release_id}", value)
        self._store.set_value(f"import:group:{entry.group}:{entry.release_id}", "")

    def members(self, group: str) -> list[LedgerEntry]:
        prefix = f"import:group:{group}:"
        found = []
        for key in self._store.entries(prefix):
            entry = self.release(key.removeprefix(prefix))
            if entry is not None:
                found.append(entry)
        return found


class MemoryKeyValue:
    """A dict with the KeyValue methods."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get_value(self, key: str) -> str | None:
        return self.data.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.data[key] = value

    def entries(self, prefix: str) -> dict[str, str]:
        return {key: self.data[key] for key in sorted(self.data) if key.startswith(prefix)}


def _load(raw: str | None) -> LedgerEntry | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return LedgerEntry(
        release_id=str(data["release_id"]),
        language=str(data["language"]),
        group=str(data["group"]),
        url=str(data["url"]),
    )
