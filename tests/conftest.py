"""Shared fixtures: a provider stand-in on loopback."""

from __future__ import annotations

import pytest
from fake_provider import FakeProvider


@pytest.fixture
async def fake_provider(nursery) -> FakeProvider:
    """A loopback HTTP server replaying queued replies; see ``fake_provider.py``."""
    server = FakeProvider()
    await nursery.start(server.serve)
    return server
