"""Settings of the API process (``DOWNLOADJOBS_API_*``)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOWNLOADJOBS_API_", extra="ignore")

    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger bodies get 413.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS.")
