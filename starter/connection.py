"""The Temporal connection of every process (worker, API, CLI, product workers), through the
SDK's environment configuration (`temporalio.envconfig`): a TOML profile (`TEMPORAL_CONFIG_FILE`,
or the SDK's default file, `~/.config/temporalio/temporal.toml`; profile `TEMPORAL_PROFILE`,
default `default`) overridden by the SDK's `TEMPORAL_*` variables, so that mTLS (client
certificate and key, server CA, server name), API keys, gRPC metadata and namespaces work.

The product's own settings still come first where they are set: `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_TLS` and `TEMPORAL_API_KEY` (also what `dev` fills in).
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.runtime import Runtime

from core.codec import data_converter
from core.config import ConfigurationError, Settings
from core.tracing import tracing_interceptors


def temporal_profile() -> ClientConnectConfig:
    """The SDK's profile with its environment overrides; a profile that cannot be read (bad
    TOML, an unknown profile, a certificate file missing) is a `ConfigurationError`."""
    try:
        return ClientConfigProfile.load().to_client_connect_config()
    except Exception as error:  # the SDK's reader raises several kinds; all are settings
        raise ConfigurationError(
            f"the Temporal connection profile cannot be used ({type(error).__name__}: {error})"
        ) from None


def with_temporal_profile(settings: Settings) -> Settings:
    """`settings` with the profile's address and namespace where the settings have none."""
    profile = temporal_profile()
    update: dict[str, object] = {}
    if settings.temporal_address is None and profile.get("target_host"):
        update["temporal_address"] = profile["target_host"]
    if "temporal_namespace" not in settings.model_fields_set and profile.get("namespace"):
        update["temporal_namespace"] = profile["namespace"]
    return settings.model_copy(update=update) if update else settings


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """One long-lived client per process, with the pydantic data converter and the payload
    codec (PAYLOAD_KEYS); the worker built on it encrypts with the same converter.

    `runtime` is the SDK runtime the client and its workers run on (the worker's serves its
    Prometheus metrics, see `core.observability.sdk_runtime`); None means the SDK default.
    """
    profile = temporal_profile()
    settings = with_temporal_profile(settings)
    if settings.temporal_address is None:
        raise ConfigurationError(
            "TEMPORAL_ADDRESS is not set, nor an address in a Temporal connection profile"
            " (`dev` sets it for its own stack)"
        )
    tls = profile.get("tls", False)
    if tls is False and (settings.temporal_tls or settings.temporal_api_key):
        tls = True  # TEMPORAL_TLS, or an API key (Temporal Cloud), with the system's CAs
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=tls,
        api_key=settings.temporal_api_key or profile.get("api_key"),
        rpc_metadata=profile.get("rpc_metadata", {}),
        interceptors=tracing_interceptors(settings),
        runtime=runtime,
    )
