"""Shared fixtures: job stores on real SQLite and real Postgres, tiny generation params."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelgen.domain import GenerationParams, Size
from reelgen.jobs import JobStore, QueuePolicy, open_job_store

# Tests that name no model (and the servers and workers they start, which inherit this) run the tiny random
# model, whose sizes and speed they are written for; test_demo_model_quality checks the real default.
os.environ.setdefault("REELGEN_DEFAULT_MODEL", "tiny-random-wan")

POSTGRES_URL = os.environ.get("REELGEN_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("REELGEN_REQUIRE_POSTGRES") == "1"


def make_params(
    prompt: str = "a red fox in the snow", model: str = "tiny-random-wan", **kw: object
) -> GenerationParams:
    base: dict[str, object] = dict(
        prompt=prompt,
        model=model,
        seconds=0.5,
        size=Size(64, 64),
        fps=16,
        num_frames=9,
        seed=7,
        steps=2,
        guidance_scale=1.0,
    )
    base.update(kw)
    return GenerationParams(**base)  # type: ignore[arg-type]


@pytest.fixture
def params() -> GenerationParams:
    return make_params()


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards; skips (or fails in CI) without Postgres."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("REELGEN_REQUIRE_POSTGRES=1 but REELGEN_TEST_POSTGRES_URL is not set")
        pytest.skip("Postgres tests need REELGEN_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as e:
        if REQUIRE_POSTGRES:
            raise
        pytest.skip(f"Postgres at REELGEN_TEST_POSTGRES_URL is not reachable: {e}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real database of each kind: the store suite runs against both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reelgen.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def store_factory(database_url: str) -> Iterator:
    opened: list[JobStore] = []

    def make(**policy: float) -> JobStore:
        s = open_job_store(database_url, QueuePolicy(**policy))  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory) -> JobStore:
    return store_factory(lease_seconds=30, max_attempts=3, retry_backoff_seconds=0.0)
