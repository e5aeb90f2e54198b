"""Shared fixtures: a throw-away PostgreSQL server (see tests/pg_server.py)."""

from __future__ import annotations

import pg_server
import pytest


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the test session; skipped with the reason where none can run."""
    reason = pg_server.missing_reason()
    if reason:
        pytest.skip(reason)
    server = pg_server.start_server()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres) -> str:
    """An SQLAlchemy URL of a fresh, empty database on the session's server."""
    return postgres.url(postgres.create_database())
