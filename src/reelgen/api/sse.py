"""Server-Sent Events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str
    data: Any
    # Only messages that come from the job's durable event log carry an id: a reconnecting client sends the
    # last one back (Last-Event-ID) and resumes right after it. Snapshots and queue updates have none.
    id: int | None = None

    def encode(self) -> bytes:
        lines = []
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines.append(f"event: {self.event}")
        payload = self.data if isinstance(self.data, str) else json.dumps(self.data, separators=(",", ":"))
        lines.extend(f"data: {line}" for line in payload.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()


KEEPALIVE = b": keep-alive\n\n"


def parse_last_event_id(value: str | None) -> int:
    """The seq to resume after; garbage (or none) means from the start."""
    if value is None:
        return 0
    value = value.strip()
    return int(value) if value.isdigit() else 0
