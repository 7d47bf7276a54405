"""Configuration from the environment, in one place for every process (worker, API, CLI, dev)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigurationError(ValueError):
    """A setting is missing or contradicts another: the message says which and what to do."""


class Settings(BaseSettings):
    """Every knob the product reads; unset servers mean the embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    temporal_address: str | None = None
    """host:port of a Temporal frontend; unset means the embedded dev server."""
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    """Connect with TLS (implied by an API key), as Temporal Cloud needs."""
    temporal_api_key: str | None = None
    """API key for Temporal Cloud (env TEMPORAL_API_KEY)."""
    temporal_task_queue: str = "account-deletion"
    temporal_dev_port: int = 7233
    """gRPC port of the embedded dev server."""
    temporal_ui_port: int = 8233
    """Web UI port of the embedded dev server."""

    database_url: str | None = None
    """PostgreSQL DSN; unset means the embedded PostgreSQL under `data_dir`."""
    database_pool_size: int = Field(default=10, ge=1, le=200)

    api_token: str | None = None
    """Bearer token the console backend presents; `dev` creates one when unset."""
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    link_secret_key: str | None = None
    """Signs verification page links (env LINK_SECRET_KEY); derived from API_TOKEN if unset."""
    public_base_url: str | None = None
    """Where users reach the API (for verification page links); defaults to http://host:port."""

    payload_keys: SecretStr | None = None
    """AES-256-GCM keys for Temporal payloads (env PAYLOAD_KEYS): `id:base64key,...`.

    The first key encrypts new payloads; every listed key decrypts (rotation: prepend the new
    key, keep the old ones while histories written with them are retained). `dev` makes one
    under `data_dir` when unset; `python -m starter.codec new-key ID` prints a new entry.
    """
    codec_token: SecretStr | None = None
    """A second bearer token the codec server accepts besides API_TOKEN (env CODEC_TOKEN):
    operators decode histories with it without holding the console backend's token."""
    codec_cors_origins: str | None = None
    """Comma-separated browser origins of the Temporal UI allowed to call the codec server
    (env CODEC_CORS_ORIGINS); unset means the embedded UI, http://127.0.0.1:<ui port> and
    http://localhost:<ui port>."""

    code_hash_key: SecretStr | None = None
    """HMAC-SHA256 keys of verification code hashes (env CODE_HASH_KEY), in the form of
    PAYLOAD_KEYS: the first key hashes new codes, every listed key still checks outstanding
    ones. Kept outside the database, so that its tables alone cannot be searched for codes.
    `dev` makes one under `data_dir`; a worker outside `dev` refuses to start without it."""

    data_dir: Path = REPO_ROOT / ".data"
    """Embedded PostgreSQL data, the dev server's SQLite file and the dev API token."""

    notifier: Literal["log", "webhook"] | None = None
    """How codes and confirmations reach customers: `webhook`, an HTTP gateway; or `log`, the
    console, which only `dev` accepts (the default there): it would put every code in the logs.
    A worker outside `dev` refuses to start unless this is `webhook`."""
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    """`whsec_<base64>` (env NOTIFY_WEBHOOK_SECRET): signs each request to the gateway the
    Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."""

    events_webhook_url: str | None = None
    """Where every stage change of every deletion is POSTed as a `deletion.stage_changed` event
    (env EVENTS_WEBHOOK_URL), by the worker's relay; unset, changes are logged, not sent."""
    events_webhook_secret: SecretStr | None = None
    """`whsec_<base64>` (env EVENTS_WEBHOOK_SECRET): signs the events the Standard Webhooks
    way; required with EVENTS_WEBHOOK_URL."""

    products_file: Path | None = None
    """A TOML file declaring products beyond the built-in registry (env PRODUCTS_FILE): their
    `worker`, `http` or `manual` drivers (README, "Adding a product"). Checked at start."""
    archive_database_url: str | None = None
    """The example product `archive`'s own PostgreSQL (env ARCHIVE_DATABASE_URL); unset means
    the database `archive` of the embedded PostgreSQL."""

    purge_batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Rows per purge transaction: small enough that no transaction holds locks for long. With
    PURGE_BATCH_SECONDS, the size of each table's first batch."""
    purge_batch_seconds: float = Field(default=0.25, ge=0, lt=1)
    """The time a purge transaction should take (env PURGE_BATCH_SECONDS): each table's
    batches after the first are sized from the last one's time per row to take about this
    long (never more than 4 times the last one's rows, at most 100,000). 0: every batch is
    PURGE_BATCH_SIZE rows."""

    @property
    def purge_batch_budget(self) -> timedelta | None:
        """PURGE_BATCH_SECONDS as the engine takes it: None for fixed batches."""
        return timedelta(seconds=self.purge_batch_seconds) if self.purge_batch_seconds else None

    worker_max_concurrent_activities: int = Field(default=20, ge=1, le=1000)
    """Activities one worker runs at once. Purges hold a pool connection per batch, so keep
    this near DATABASE_POOL_SIZE times two; scale out with more workers instead."""
    worker_max_concurrent_workflow_tasks: int = Field(default=20, ge=2, le=1000)
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    """Runs kept in memory between tasks; a waiting deletion costs a few tens of KB."""
    worker_shutdown_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM the worker lets running activities finish for this long."""

    log_level: str = "INFO"
    log_format: Literal["json", "text"] | None = None
    """`json` (one object per line, with the workflow id, run id and activity of Temporal
    records) or `text`. Unset: `json` for the worker and the API, `text` for `dev` and the
    command-line verbs, whose logs a person reads."""
    worker_metrics_address: str = "127.0.0.1:9464"
    """host:port where the worker serves the SDK's Prometheus metrics at /metrics (env
    WORKER_METRICS_ADDRESS); empty or `off` disables them. One port per worker process."""
    otel_exporter_otlp_endpoint: str | None = None
    """OpenTelemetry tracing, off when unset (env OTEL_EXPORTER_OTLP_ENDPOINT): spans of API
    requests, workflows and activities exported over OTLP/HTTP to this collector."""
    metrics_token: SecretStr | None = None
    """When set, the API's /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (a
    scrape-only credential); unset, /metrics is open like /healthz (env METRICS_TOKEN)."""

    def link_secret(self) -> bytes:
        if self.link_secret_key:
            return self.link_secret_key.encode()
        if not self.api_token:
            raise ConfigurationError("set LINK_SECRET_KEY or API_TOKEN to sign verification links")
        return hashlib.sha256(b"verification-links:" + self.api_token.encode()).digest()

    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"


def load_settings() -> Settings:
    """The settings from the environment; a malformed one is a `ConfigurationError` naming each
    variable and its rule on one line, without the value (it may be a key or a token)."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']).upper()}: {item['msg']}"
            for item in error.errors(include_input=False, include_context=False)
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None
