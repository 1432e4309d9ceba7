"""Where to connect and which headers to send, per provider.

Only this module knows that Azure wants ``api-key`` while OpenAI wants a bearer token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

OPENAI_URL = "wss://api.openai.com/v1/realtime"


@dataclass(frozen=True)
class Endpoint:
    """A resolved connection target. ``headers`` may hold secrets: never log them."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def safe_url(self) -> str:
        """The URL without query credentials, for logs and messages."""
        parts = urlsplit(self.url)
        query = [(k, v if k in ("model", "deployment", "api-version") else "***")
                 for k, v in parse_qsl(parts.query)]
        return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def with_model(url: str, model: str) -> str:
    """Add ``?model=`` unless the URL names one already (Azure URLs often do)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if model and not any(k == "model" for k, _ in query):
        query.append(("model", model))
    return urlunsplit(parts._replace(query=urlencode(query)))


def endpoint(name: str, model: str, api_key: str | None, url: str = "",
             headers: Mapping[str, str] | None = None) -> Endpoint:
    """The URL and headers for a provider, before any user-supplied extra headers win."""
    out: dict[str, str] = {}
    if name == "openai":
        target = with_model(url or OPENAI_URL, model)
        if api_key:
            out["Authorization"] = f"Bearer {api_key}"
    elif name == "azure":
        target = with_model(url, model)
        if api_key:
            out["api-key"] = api_key
    elif name == "custom":
        target = with_model(url, model)
        if api_key:
            out["Authorization"] = f"Bearer {api_key}"
    else:
        raise ValueError(f"unknown provider {name!r}; expected openai, azure or custom")
    out.update(headers or {})
    return Endpoint(target, out)
