"""What every versioned document a tenant publishes (segmentation and plan policies, scorecards, strategies) is
checked for alike, without I/O: its size as compact UTF-8 JSON, and, for an ordered list of rules where the first
match wins, names used twice and rules no account can reach because an earlier rule matches every account."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def compact_size(document: Any) -> int:
    """The document's size as compact UTF-8 JSON, in bytes (``RecursionError`` when it is nested too deep)."""
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str).encode())


class RuleOrder:
    """Walks an ordered rule list once: :meth:`see` each raw rule in turn."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.catch_all: int | None = None  # the first rule that matches every account

    def see(self, i: int, raw: Any, *, unconditional: bool) -> tuple[list[str], int | None]:
        """The reasons ``rules[i]`` repeats an earlier rule's name, and the index of the earlier rule that matches
        every account before it (then it can never match), else None. ``unconditional``: this rule matches every
        account."""
        errors = []
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if isinstance(name, str) and name in self.names:
            errors.append(f"rules[{i}]: the name {name!r} is already the name of rules[{self.names[name]}]")
        elif isinstance(name, str):
            self.names[name] = i
        if self.catch_all is not None:
            return errors, self.catch_all
        if isinstance(raw, Mapping) and unconditional:
            self.catch_all = i
        return errors, None
