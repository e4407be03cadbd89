"""The shape of a wire-provider test case (see ``wire_case_*.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from podactors.llm.events import TokenUsage
from podactors.llm.provider import HttpProvider
from podactors.llm.transport import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, total_timeout=30)
API_KEY = "sk-secret"


@attrs.frozen
class WireCase:
    """A provider, its fixture and the response it must assemble from it.

    ``make(url, **kw)`` builds the provider with ``API_KEY``, passing ``kw`` (``retry``,
    ``sleep``) on; ``error_body`` is an error response in the provider's own shape whose
    message contains the word ``bad``.
    """

    name: str
    make: Callable[..., HttpProvider]
    fixture: str
    items: list[Any]
    stop_reason: str
    usage: TokenUsage
    path: str
    error_body: bytes
