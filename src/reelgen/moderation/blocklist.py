"""The default prompt check: a configurable blocklist of words and phrases, matched case-insensitively as
whole words (`gore` matches "Gore!" but not "gorey"; a phrase matches across any whitespace).

Entries come from settings, inline (`REELGEN_MODERATION_BLOCKLIST`, comma- or newline-separated) and/or from a
file (`REELGEN_MODERATION_BLOCKLIST_FILE`, one entry per line, `#` comments). An entry may start with `hold:` or
`block:` to choose what a match does; others use the default action (`REELGEN_MODERATION_BLOCKLIST_ACTION`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from reelgen.moderation.base import Verdict, VerdictKind


class Blocklist:
    def __init__(self, entries: Iterable[str], *, default: VerdictKind = VerdictKind.BLOCK) -> None:
        self.rules: list[tuple[str, VerdictKind, re.Pattern[str]]] = []
        for raw in entries:
            entry = raw.strip()
            kind = default
            for prefix, k in (("hold:", VerdictKind.HOLD), ("block:", VerdictKind.BLOCK)):
                if entry.lower().startswith(prefix):
                    entry, kind = entry[len(prefix) :].strip(), k
            if not entry or entry.startswith("#"):
                continue
            words = [re.escape(w) for w in entry.split()]
            pattern = re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)
            self.rules.append((entry, kind, pattern))

    @classmethod
    def from_settings(cls, inline: str | None, path: Path | None, default: str = "block") -> Blocklist:
        entries: list[str] = []
        if inline:
            entries += re.split(r"[,\n]", inline)
        if path is not None:
            entries += path.read_text(encoding="utf-8").splitlines()
        return cls(entries, default=VerdictKind(default))

    def check(self, prompt: str) -> Verdict:
        """Block wins over hold; the reason names the entry that matched."""
        held: Verdict | None = None
        for entry, kind, pattern in self.rules:
            if pattern.search(prompt):
                reason = f'the prompt matches the blocklist entry "{entry}"'
                if kind is VerdictKind.BLOCK:
                    return Verdict.block(reason)
                held = held or Verdict.hold(reason)
        return held or Verdict.allow()

    def __len__(self) -> int:
        return len(self.rules)
