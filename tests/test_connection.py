"""Every process connects to Temporal through the SDK's connection profiles
(`temporalio.envconfig`): a TOML profile or the SDK's `TEMPORAL_*` variables give the address,
namespace and mutual TLS. Tested against the dev server behind a TLS-terminating proxy that
requires a client certificate of its own CA (`tests/support/tls_proxy.py`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from core.config import ConfigurationError, Settings
from starter.connection import connect
from tests.support import Stack, cli, new_account, start_and_receive_code
from tests.support.tls_proxy import Certificates, make_certificates, mtls_proxy


def write_profile(
    path: Path, address: str, namespace: str, certs: Certificates, **tls: Path
) -> Path:
    files = {
        "server_ca_cert_path": certs.ca,
        "client_cert_path": certs.client_cert,
        "client_key_path": certs.client_key,
        **tls,
    }
    lines = [
        "[profile.prod]",
        f'address = "{address}"',
        f'namespace = "{namespace}"',
        "[profile.prod.tls]",
        'server_name = "localhost"',
        *(f'{key} = "{value}"' for key, value in files.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def no_temporal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what the test sets: no TEMPORAL_* of the session's environment."""
    for name in list(os.environ):
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)


async def test_a_toml_profile_connects_with_mutual_tls_for_the_worker_client_and_cli(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_temporal_env: None,
    cli_env: dict[str, str],
) -> None:
    certs = make_certificates(tmp_path / "certs")
    async with mtls_proxy(certs, client.service_client.config.target_host) as address:
        profile = write_profile(tmp_path / "temporal.toml", address, client.namespace, certs)
        monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile))
        monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
        mtls = await connect(Settings(temporal_task_queue=task_queue))
        assert mtls.service_client.config.target_host == address
        assert mtls.namespace == client.namespace
        stack = Stack(mtls, pool, task_queue)
        account_id = await new_account(pool)
        async with stack.worker():
            await start_and_receive_code(stack.deletions, stack.inbox, account_id)
            env = {k: v for k, v in cli_env.items() if not k.startswith("TEMPORAL_")}
            env |= {
                "TEMPORAL_CONFIG_FILE": str(profile),
                "TEMPORAL_PROFILE": "prod",
                "TEMPORAL_TASK_QUEUE": task_queue,
            }
            code, out, err = await cli(env, "status", account_id, "--json")
            assert code == 0, err
            assert json.loads(out)["stage"] == "AWAITING_VERIFICATION"


async def test_the_sdk_variables_alone_connect_with_mutual_tls(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_temporal_env: None
) -> None:
    certs = make_certificates(tmp_path / "certs")
    async with mtls_proxy(certs, client.service_client.config.target_host) as address:
        for name, value in {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": client.namespace,
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca),
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs.client_cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs.client_key),
            "TEMPORAL_TLS_SERVER_NAME": "localhost",
        }.items():
            monkeypatch.setenv(name, value)
        mtls = await connect(Settings())
        assert (await mtls.count_workflows()).count >= 0


async def test_the_proxy_refuses_clients_without_a_certificate_of_its_ca(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_temporal_env: None
) -> None:
    certs = make_certificates(tmp_path / "certs")
    async with mtls_proxy(certs, client.service_client.config.target_host) as address:
        stranger = write_profile(
            tmp_path / "stranger.toml",
            address,
            client.namespace,
            certs,
            client_cert_path=certs.stranger_cert,
            client_key_path=certs.stranger_key,
        )
        monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(stranger))
        monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
        with pytest.raises(RuntimeError):
            await connect(Settings())
        # Plain TLS with the right CA but no client certificate: refused too.
        monkeypatch.delenv("TEMPORAL_CONFIG_FILE")
        monkeypatch.delenv("TEMPORAL_PROFILE")
        monkeypatch.setenv("TEMPORAL_ADDRESS", address)
        monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs.ca))
        monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "localhost")
        with pytest.raises(RuntimeError):
            await connect(Settings())


def test_a_profile_that_cannot_be_read_is_one_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_temporal_env: None
) -> None:
    broken = tmp_path / "temporal.toml"
    broken.write_text("[profile.prod\naddress = ")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(broken))
    from starter.connection import temporal_profile

    with pytest.raises(ConfigurationError, match="Temporal connection profile"):
        temporal_profile()
