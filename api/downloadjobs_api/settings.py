"""Settings of the API process (``DOWNLOADJOBS_API_*``)."""

import enum
import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The longest long-poll a client may ask for (``waitSeconds``, ``Prefer: wait``): well
#: inside any proxy's timeout (nginx and load balancers cut at 30 to 60 s).
LONG_POLL_CAP = 25


class AuthMode(enum.StrEnum):
    """Where the caller's identity (the owner of the jobs it creates) comes from."""

    NONE = "none"  # development: everyone is "anonymous"
    TOKEN = "token"  # static bearer tokens, from a Secret
    HEADER = "header"  # a header set by an authenticating proxy in front of the API


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOWNLOADJOBS_API_", extra="ignore")

    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger bodies get 413.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Origins allowed by CORS: a JSON list or a comma-separated list; * allows any "
            "origin. Empty: no CORS headers (the demo page needs none: it is same-origin)."
        ),
    )
    cors_max_age: int = Field(
        default=600, ge=0, le=86400, description="Seconds a browser may cache a preflight answer."
    )

    auth_mode: AuthMode = Field(default=AuthMode.NONE, description="none, token or header.")
    tokens: dict[str, str] = Field(
        default_factory=dict, description="Bearer token -> owner (token mode), JSON object."
    )
    tokens_file: Path | None = Field(
        default=None, description="A JSON file of token -> owner (a mounted Secret), token mode."
    )
    identity_header: str = Field(
        default="X-Forwarded-User", description="Header carrying the owner (header mode)."
    )
    proxy_secret: str = Field(
        default="",
        description=(
            "Header mode: a secret the authenticating proxy sends in proxy_secret_header with "
            "every request; requests without it are 401. Empty: not checked (then only the "
            "proxy may reach the API: the chart's NetworkPolicy)."
        ),
    )
    proxy_secret_file: Path | None = Field(
        default=None, description="A file holding proxy_secret (a mounted Secret)."
    )
    proxy_secret_header: str = Field(
        default="X-Proxy-Secret", description="Header carrying proxy_secret (header mode)."
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description=(
            "Proxies (IP addresses or networks, comma-separated) whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed: the client is the last address in "
            "X-Forwarded-For that is not one of them. Never '*': a client would choose its "
            "own address, and so its own rate limit."
        ),
    )
    idempotency_secret: str = Field(
        default="",
        description=(
            "Key of the HMAC that names a job after (owner, Idempotency-Key), shared by every "
            "replica (a Secret). Empty: a random key per process (replays then hold within "
            "one process only)."
        ),
    )
    idempotency_secret_file: Path | None = Field(
        default=None, description="A file holding idempotency_secret (a mounted Secret)."
    )

    poll_rate: str = Field(
        default="600/minute",
        description="Polls (GET) per client: N/second, N/minute, N/hour or N/day.",
    )
    initiate_rate: str = Field(
        default="60/minute", description="Writes (POST, DELETE) per client, separately."
    )
    max_active_jobs_per_owner: int = Field(
        default=20, ge=1, description="Queued or processing jobs one owner may have."
    )
    idempotency_window_seconds: int = Field(
        default=24 * 3600, ge=60, description="How long an Idempotency-Key is honoured."
    )
    max_wait_seconds: int = Field(
        default=LONG_POLL_CAP,
        ge=0,
        le=LONG_POLL_CAP,
        description="Longest long-poll (waitSeconds, Prefer: wait).",
    )
    max_long_polls_per_owner: int = Field(
        default=10,
        ge=0,
        description=(
            "Long-polls one owner (or, unauthenticated, one address) may hold open at once "
            "per replica; the ones beyond answer at once without waiting."
        ),
    )
    max_connections: int = Field(
        default=2000,
        ge=1,
        description=(
            "Connections and requests in flight per process (uvicorn's limit_concurrency); "
            "beyond it uvicorn answers 503 at once."
        ),
    )
    negative_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description=(
            "How long a job id the API server did not know is remembered as missing, so a "
            "missing job answers 404 as fast as another owner's."
        ),
    )
    watch_timeout_seconds: int = Field(
        default=300, ge=5, description="Each watch request's server-side timeout; then resume."
    )
    access_log: Literal["all", "writes-and-errors", "none"] = Field(
        default="writes-and-errors",
        description=(
            "One JSON line per request: all, or only writes and 4xx/5xx answers (successful "
            "polls are counted in /metrics instead: 10,000 pollers would flood the logs)."
        ),
    )
    hsts_max_age: int = Field(default=31536000, ge=0, description="Strict-Transport-Security.")
    content_security_policy: str = Field(
        default=(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ),
        description="Content-Security-Policy of every response (the Swagger UI at /docs too).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        """``["https://a.example"]``, ``https://a.example,https://b.example`` or ``*``."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> Any:
        """A comma-separated list or a JSON list of addresses or networks; never ``*``."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [item.strip() for item in text.split(",") if item.strip()]
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str):
                    raise ValueError("forwarded_allow_ips: addresses or networks as strings")
                if "*" in item:
                    raise ValueError(
                        "forwarded_allow_ips may not be '*': any client could then choose its "
                        "own address (and rate limit); list the proxies' addresses or networks"
                    )
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError as exc:
                    raise ValueError(f"forwarded_allow_ips: {item!r} is no address") from exc
        return value

    def the_proxy_secret(self) -> str:
        """The proxy secret of the settings, or of its file."""
        if self.proxy_secret_file is not None:
            return self.proxy_secret_file.read_text().strip()
        return self.proxy_secret

    def the_idempotency_secret(self) -> str:
        """The idempotency secret of the settings, or of its file."""
        if self.idempotency_secret_file is not None:
            return self.idempotency_secret_file.read_text().strip()
        return self.idempotency_secret

    def all_tokens(self) -> dict[str, str]:
        """The tokens of the settings and of the tokens file together."""
        tokens = dict(self.tokens)
        if self.tokens_file is not None:
            tokens.update(json.loads(self.tokens_file.read_text()))
        return tokens
