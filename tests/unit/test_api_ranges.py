"""HTTP Range parsing for downloads."""

from __future__ import annotations

import pytest

from reelgen.api.errors import APIError
from reelgen.api.ranges import parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-99", (0, 99)),
        ("bytes=10-", (10, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=0-1,5-6", None),  # several ranges: whole file
        ("items=0-1", None),  # unknown unit: whole file
        ("bytes=5-2", None),  # invalid: ignored
        ("bytes=abc", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_ranges_are_416_with_the_size(header: str) -> None:
    with pytest.raises(APIError) as e:
        parse_range(header, 1000)
    assert e.value.status == 416 and e.value.headers["content-range"] == "bytes */1000"
