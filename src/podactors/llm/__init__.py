"""Model providers over httpx streaming, normalised into one event stream.

``create_provider(manifest.model)`` builds the provider a manifest's ``[model]`` table
names; each provider instance owns one ``httpx.AsyncClient`` (close it with
``await provider.aclose()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podactors.errors import ManifestError
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.events import LlmResponse, StreamEvent, TokenUsage
from podactors.llm.gemini import GeminiProvider
from podactors.llm.openai_chat import OpenAIChatProvider
from podactors.llm.openai_responses import OpenAIResponsesProvider
from podactors.llm.provider import HttpProvider, Provider
from podactors.llm.request import Request, ToolSpec
from podactors.llm.scripted import ScriptedProvider
from podactors.llm.transport import RetryPolicy

if TYPE_CHECKING:
    from podactors.manifest import ModelConfig

WIRE_PROVIDERS: dict[str, type[HttpProvider]] = {
    provider.name: provider
    for provider in (
        AnthropicProvider,
        OpenAIChatProvider,
        OpenAIResponsesProvider,
        GeminiProvider,
    )
}


def create_provider(config: ModelConfig, *, retry: RetryPolicy | None = None) -> Provider:
    """The provider a ``[model]`` table describes, its key read from env or file now."""
    if config.provider == "scripted":
        if config.script is None:
            raise ManifestError("required when provider is 'scripted'", key="model.script")
        return ScriptedProvider.from_file(config.script)
    provider = WIRE_PROVIDERS[config.provider]
    if config.base_url is None:
        raise ManifestError(f"no base URL for provider {config.provider!r}", key="model.base_url")
    return provider(
        model=config.model, base_url=config.base_url, api_key=config.api_key(), retry=retry
    )


__all__ = [
    "WIRE_PROVIDERS",
    "AnthropicProvider",
    "GeminiProvider",
    "HttpProvider",
    "LlmResponse",
    "OpenAIChatProvider",
    "OpenAIResponsesProvider",
    "Provider",
    "Request",
    "RetryPolicy",
    "ScriptedProvider",
    "StreamEvent",
    "TokenUsage",
    "ToolSpec",
    "create_provider",
]
