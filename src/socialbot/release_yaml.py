"""YAML release files: a safe loader without aliases, and the mistakes YAML hides.

Apart from ``releases`` so that a queue of JSON files never loads PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from socialbot.errors import InvalidRelease, first_line


class _SafeLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (no alias bombs) and without YAML 1.1
    booleans such as ``no`` (the language code for Norwegian)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.YAMLError(
                f"uses a YAML alias (line {event.start_mark.line + 1}), which is not allowed"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key given twice (YAML would keep the last one silently)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.YAMLError(
                    f"has the field {key!r} twice (lines {seen[key]} and {line}); keep one"
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_SafeLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path, text: str) -> Any:
    """The data of a YAML release file; every problem one ``InvalidRelease``."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        match = re.search(r"constructor for the tag '([^']+)'", exc.problem or "")
        if match is None:
            raise InvalidRelease(str(path), f"is not valid YAML ({_yaml_problem(exc)})") from None
        tag = match.group(1).replace("tag:yaml.org,2002:", "!!")
        raise InvalidRelease(str(path), f"uses the YAML tag {tag}, which is not allowed") from None
    except yaml.YAMLError as exc:
        if type(exc) is yaml.YAMLError and str(exc).startswith("has the field"):
            raise InvalidRelease(str(path), str(exc)) from None
        raise InvalidRelease(str(path), f"is not valid YAML ({_yaml_problem(exc)})") from None
    except RecursionError:
        raise InvalidRelease(str(path), "is not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value no constructor accepts
        raise InvalidRelease(str(path), f"is not usable YAML ({first_line(exc)})") from None
    if "#" in text:
        _refuse_cut_hashtags(path, text)
    return data


_HASHTAG_COMMENT = re.compile(r"[ \t]+#[^\s#]")


def _refuse_cut_hashtags(path: Path, text: str) -> None:
    """An unquoted ``title: A stronger #CohesionPolicy`` is cut at the ``#`` by YAML.

    Such a comment, glued to a word right after a plain (unquoted) value, is
    a hashtag that YAML silently dropped: refuse the file and say to quote it.
    """
    lines = text.splitlines()
    for node in _plain_scalars(yaml.compose(text, Loader=_SafeLoader)):
        end = node.end_mark
        rest = lines[end.line][end.column :] if end.line < len(lines) else ""
        match = _HASHTAG_COMMENT.match(rest)
        if match:
            tag = rest.strip().split()[0]
            raise InvalidRelease(
                str(path),
                f"line {end.line + 1}: the text stops before {tag!r}, because YAML reads an "
                "unquoted '#' after a space as the start of a comment: put the whole text in "
                'double quotes, e.g. title: "… #CohesionPolicy …"',
            )


def _plain_scalars(node: yaml.Node | None) -> Iterable[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        if node.style is None:
            yield node
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            yield from _plain_scalars(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _plain_scalars(item)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        return f"{exc.problem or exc.context}{where}"
    return str(exc)
