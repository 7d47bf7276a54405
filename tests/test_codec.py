"""Payload encryption: the codec, its keys and rotation, the converter, and the codec server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from contract.models import SubmitCodeInput
from core.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKey,
    UnknownKeyError,
    data_converter,
    data_converter_for_keys,
    main,
    parse_payload_keys,
)
from core.config import ConfigurationError, Settings
from service.api import create_app
from service.api.codec_access import SESSION_COOKIE, allowed_origins
from service.dev import _dev_code_hash_key, _dev_payload_keys, _dev_token, secret_file
from service.embedded import EmbeddedTemporal, embedded_defaults
from starter.client import connect
from tests.support import in_process_api

SECRET = b'{"code":"48213977","email":"jane.doe@example.com","phone":"+14155550123"}'
OLD = PayloadKey("k1", bytes(range(32)))
NEW = PayloadKey("k2", bytes(range(100, 132)))


def plain(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


# --- the codec --------------------------------------------------------------------------------


async def test_round_trip_names_the_key_and_hides_the_data() -> None:
    codec = EncryptionCodec([NEW, OLD])
    [encrypted] = await codec.encode([plain()])
    assert encrypted.metadata["encoding"] == ENCODING == b"binary/encrypted"
    assert encrypted.metadata[KEY_ID_METADATA] == b"k2"
    assert set(encrypted.metadata) == {"encoding", KEY_ID_METADATA}, "json/plain leaked"
    for fragment in (b"48213977", b"jane.doe", b"4155550123", b"json/plain"):
        assert fragment not in encrypted.data
    assert await codec.decode([encrypted]) == [plain()]
    [again] = await codec.encode([plain()])
    assert again.data != encrypted.data, "each payload gets a fresh nonce"


async def test_rotation_old_payloads_still_decode_new_ones_use_the_current_key() -> None:
    [written_before] = await EncryptionCodec([OLD]).encode([plain()])
    rotated = EncryptionCodec([NEW, OLD])
    assert rotated.current_key_id == "k2" and rotated.key_ids == ("k2", "k1")
    assert await rotated.decode([written_before]) == [plain()]
    [written_after] = await rotated.encode([plain()])
    assert written_after.metadata[KEY_ID_METADATA] == b"k2"


async def test_an_unknown_key_id_is_a_clear_error() -> None:
    [encrypted] = await EncryptionCodec([OLD]).encode([plain()])
    with pytest.raises(UnknownKeyError) as raised:
        await EncryptionCodec([NEW]).decode([encrypted])
    message = str(raised.value)
    assert "'k1'" in message and "PAYLOAD_KEYS" in message and "k2" in message
    assert base64.b64encode(NEW.secret).decode() not in message


async def test_a_wrong_key_under_the_same_id_or_altered_data_fails_authentication() -> None:
    [encrypted] = await EncryptionCodec([OLD]).encode([plain()])
    impostor = EncryptionCodec([PayloadKey("k1", bytes(32))])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await impostor.decode([encrypted])
    altered = Payload()
    altered.CopyFrom(encrypted)
    altered.data = encrypted.data[:-1] + bytes([encrypted.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError):
        await EncryptionCodec([OLD]).decode([altered])
    truncated = Payload(metadata=dict(encrypted.metadata), data=b"short")
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        await EncryptionCodec([OLD]).decode([truncated])


async def test_unencrypted_payloads_pass_through_decode() -> None:
    """An operator's plain `temporal workflow signal`, or a history from before encryption."""
    payloads = [plain(), Payload(metadata={"encoding": b"binary/null"})]
    assert await EncryptionCodec([NEW]).decode(payloads) == payloads


# --- keys from configuration ------------------------------------------------------------------


def test_payload_keys_parse_in_order_with_either_base64_alphabet() -> None:
    secret = bytes([251] * 32)  # base64 with '+' and '/', URL-safe with '-' and '_'
    standard = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    keys = parse_payload_keys(f" new:{standard} , old:{urlsafe}")
    assert [key.id for key in keys] == ["new", "old"]
    assert keys[0].secret == keys[1].secret == secret


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "entry 1 is empty"),
        ("k1", "id:base64key"),
        ("k1:", "id:base64key"),
        (":" + base64.b64encode(bytes(32)).decode(), "id:base64key"),
        ("k1:not base64!!", "not valid base64"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "needs 32"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "not valid"),
        (
            f"k1:{base64.b64encode(bytes(32)).decode()},k1:{base64.b64encode(bytes(32)).decode()}",
            "more than once",
        ),
        (f"k1:{base64.b64encode(bytes(32)).decode()},", "entry 2 is empty"),
    ],
)
def test_bad_payload_keys_are_refused_clearly(text: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as raised:
        parse_payload_keys(text)
    key_material = text.partition(":")[2].split(",")[0]
    if len(key_material) > 8:
        assert key_material not in str(raised.value), "the error echoes key material"


def test_keys_never_show_in_repr_or_settings() -> None:
    entry = PayloadKey.generate("k9").entry()
    secret = entry.split(":", 1)[1]
    settings = Settings(payload_keys=SecretStr(entry))
    assert secret not in repr(parse_payload_keys(entry)[0])
    assert secret not in repr(settings) and secret not in str(settings.model_dump())


def test_new_key_command_prints_an_entry_that_parses() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["new-key", "k2027"]) == 0
    [key] = parse_payload_keys(out.getvalue().strip())
    assert key.id == "k2027" and len(key.secret) == 32


async def test_the_converter_encrypts_payloads_and_failure_messages() -> None:
    converter = data_converter(Settings(payload_keys=SecretStr(f"{NEW.entry()},{OLD.entry()}")))
    [payload] = await converter.encode([SubmitCodeInput(code="48213977")])
    assert payload.metadata["encoding"] == ENCODING and b"48213977" not in payload.data
    assert await converter.decode([payload], [SubmitCodeInput]) == [
        SubmitCodeInput(code="48213977")
    ]

    failure = Failure()
    await converter.encode_failure(
        ApplicationError("Litigation hold LH-7", type="LegalHold"), failure
    )
    assert failure.message == "Encoded failure" and not failure.stack_trace
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    assert b"Litigation" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.message == "Litigation hold LH-7"


async def test_no_client_without_payload_keys() -> None:
    settings = Settings(temporal_address="127.0.0.1:1", payload_keys=None)
    with pytest.raises(ConfigurationError, match="PAYLOAD_KEYS is not set"):
        await connect(settings)


# --- the embedded stack -----------------------------------------------------------------------


def test_dev_makes_a_payload_key_once_and_the_cli_finds_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, payload_keys=None)
    first = _dev_payload_keys(settings)
    assert _dev_payload_keys(settings) == first
    keys_file = tmp_path / "payload-keys"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    [key] = parse_payload_keys(first.get_secret_value())
    found = embedded_defaults(
        settings.model_copy(update={"database_url": "postgresql://x/y", "temporal_address": "h:1"})
    )
    assert found.payload_keys == first
    configured = SecretStr(NEW.entry())
    assert _dev_payload_keys(Settings(data_dir=tmp_path, payload_keys=configured)) == configured


def test_dev_makes_a_code_hash_key_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, code_hash_key=None)
    first = _dev_code_hash_key(settings)
    assert _dev_code_hash_key(settings) == first
    assert stat.S_IMODE((tmp_path / "code-hash-key").stat().st_mode) == 0o600
    [key] = parse_payload_keys(first.get_secret_value(), setting="CODE_HASH_KEY")
    assert len(key.secret) == 32
    configured = SecretStr(NEW.entry())
    assert _dev_code_hash_key(Settings(data_dir=tmp_path, code_hash_key=configured)) == configured


def test_every_secret_file_is_created_0600_in_one_step_whatever_the_umask(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, api_token=None, payload_keys=None, code_hash_key=None)
    previous = os.umask(0)  # a umask that would leave a write-then-chmod file open a moment
    try:
        _dev_token(settings)
        _dev_payload_keys(settings)
        _dev_code_hash_key(settings)
    finally:
        os.umask(previous)
    for name in ("api-token", "payload-keys", "code-hash-key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_a_secret_file_is_never_written_through_a_link_planted_in_its_place(
    tmp_path: Path,
) -> None:
    """O_EXCL: a link (even a dangling one) at the path is refused, not followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "api-token").symlink_to(elsewhere / "stolen")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        _dev_token(Settings(data_dir=data, api_token=None))
    assert not (elsewhere / "stolen").exists()
    with pytest.raises(ConfigurationError, match="not a regular file"):
        secret_file(elsewhere, lambda: "never written")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_dev_servers_ui_is_pointed_at_the_codec_server(tmp_path: Path) -> None:
    endpoint = "http://127.0.0.1:8080/codec"
    server = EmbeddedTemporal(
        tmp_path / "temporal.db",
        port=_free_port(),
        ui_port=_free_port(),
        ui_codec_endpoint=endpoint,
    )
    assert server.command()[-2:] == ["--ui-codec-endpoint", endpoint]
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.ui_url, timeout=10) as http:
            settings = (await http.get("/api/v1/settings")).json()
    finally:
        await asyncio.to_thread(server.stop)
    assert settings["Codec"]["Endpoint"] == endpoint


# --- the codec server -------------------------------------------------------------------------

TOKEN = "codec-api-token-0123456789"
CODEC_TOKEN = "codec-only-token-9876543210"
UI = "http://ui.example:8233"


def _settings(task_queue: str, **changes: object) -> Settings:
    return Settings(
        api_token=TOKEN,
        codec_token=SecretStr(CODEC_TOKEN),
        codec_cors_origins=f"{UI}, http://localhost:8233/",
        temporal_task_queue=task_queue,
    ).model_copy(update=changes)


@pytest.fixture
async def api(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(task_queue), pool=pool, client=client)
    async with in_process_api(app) as http:
        yield http


def _body(*payloads: Payload) -> dict[str, object]:
    from google.protobuf import json_format

    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def _parse(body: dict[str, list[dict[str, object]]]) -> list[Payload]:
    from google.protobuf import json_format

    return [json_format.ParseDict(p, Payload()) for p in body["payloads"]]


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_codec_server_encodes_and_decodes_over_http(
    api: httpx.AsyncClient, client: Client
) -> None:
    encoded = await api.post("/codec/encode", json=_body(plain()), headers=_auth())
    assert encoded.status_code == 200, encoded.text
    [payload] = _parse(encoded.json())
    assert payload.metadata["encoding"] == ENCODING and b"48213977" not in payload.data
    codec = client.data_converter.payload_codec
    assert codec is not None
    assert await codec.decode([payload]) == [plain()], "the server uses the workers' codec"

    decoded = await api.post(
        "/codec/decode",
        json=_body(payload, plain(b'"as it was"')),
        headers={**_auth(CODEC_TOKEN), "X-Namespace": "default"},
    )
    assert decoded.status_code == 200, decoded.text
    assert _parse(decoded.json()) == [plain(), plain(b'"as it was"')]
    assert json.loads(decoded.text)["payloads"][0]["data"] == base64.b64encode(SECRET).decode()


async def test_codec_server_answers_the_ui_origin_only(api: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    allowed = await api.options("/codec/decode", headers=preflight)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == UI
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST"
    assert {"content-type", "x-namespace", "authorization"} <= {
        header.strip() for header in allowed.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    localhost = await api.options(
        "/codec/encode", headers={**preflight, "Origin": "http://localhost:8233"}
    )
    assert localhost.headers["Access-Control-Allow-Origin"] == "http://localhost:8233"

    for origin in ("https://evil.example", "http://ui.example:9999", "null"):
        refused = await api.options("/codec/decode", headers={**preflight, "Origin": origin})
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
    wrong_method = await api.options(
        "/codec/decode", headers={**preflight, "Access-Control-Request-Method": "DELETE"}
    )
    assert wrong_method.status_code == 403

    from_ui = await api.post(
        "/codec/decode", json=_body(plain()), headers={**_auth(), "Origin": UI}
    )
    assert from_ui.status_code == 200
    assert from_ui.headers["Access-Control-Allow-Origin"] == UI
    elsewhere = await api.post(
        "/codec/decode", json=_body(plain()), headers={**_auth(), "Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
    api_route = await api.options("/v1/accounts", headers={**preflight, "Origin": UI})
    assert "Access-Control-Allow-Origin" not in api_route.headers, "CORS is for /codec only"


async def test_codec_server_refuses_unauthenticated_calls(api: httpx.AsyncClient) -> None:
    [encrypted] = await EncryptionCodec([OLD]).encode([plain()])
    for headers in ({}, _auth("wrong"), {"Authorization": TOKEN}, {"Authorization": "Bearer "}):
        for operation in ("encode", "decode"):
            response = await api.post(
                f"/codec/{operation}", json=_body(encrypted), headers={**headers, "Origin": UI}
            )
            assert response.status_code == 401, (headers, operation)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.headers["Access-Control-Allow-Origin"] == UI, "the UI can show why"
            assert "payloads" not in response.json()


async def test_a_browser_signs_in_once_and_its_ui_decodes_with_the_cookie(
    api: httpx.AsyncClient,
) -> None:
    page = await api.get("/codec/session")
    assert page.status_code == 200 and '<form method="post"' in page.text
    refused = await api.post("/codec/session", data={"token": "wrong"})
    assert refused.status_code == 401 and SESSION_COOKIE not in refused.cookies

    signed_in = await api.post("/codec/session", data={"token": CODEC_TOKEN})
    assert signed_in.status_code == 200
    cookie = signed_in.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/codec", "max-age=28800"):
        assert attribute in cookie, attribute
    session = signed_in.cookies[SESSION_COOKIE]
    api.cookies.clear()  # each request below says which cookie it carries

    with_cookie = await api.post(
        "/codec/decode",
        json=_body(plain()),
        headers={"Origin": UI, "Cookie": f"{SESSION_COOKIE}={session}"},
    )
    assert with_cookie.status_code == 200
    assert with_cookie.headers["Access-Control-Allow-Credentials"] == "true"
    expires, _, signature = session.partition(".")
    for forged in (f"{int(expires) + 3600}.{signature}", f"{expires}.{'0' * 64}", "garbage"):
        response = await api.post(
            "/codec/decode",
            json=_body(plain()),
            headers={"Origin": UI, "Cookie": f"{SESSION_COOKIE}={forged}"},
        )
        assert response.status_code == 401, forged


UI_SECRET = "dev-ui-secret-made-at-start-0123456789"


@pytest.mark.parametrize(
    ("ui_secret", "path", "client_host", "origin", "status"),
    [
        (UI_SECRET, f"/codec/{UI_SECRET}/decode", "127.0.0.1", "http://localhost:8233", 200),
        (UI_SECRET, f"/codec/{UI_SECRET}/encode", "::1", UI, 200),
        # Forged: any local process can send the UI's Origin; without the secret it is refused.
        (UI_SECRET, "/codec/decode", "127.0.0.1", UI, 401),
        (UI_SECRET, "/codec/decode", "::1", "http://localhost:8233", 401),
        (UI_SECRET, f"/codec/{UI_SECRET[:-1]}x/decode", "127.0.0.1", UI, 401),
        (None, f"/codec/{UI_SECRET}/decode", "127.0.0.1", UI, 401),  # not `dev`: no secret
        (UI_SECRET, f"/codec/{UI_SECRET}/decode", "127.0.0.1", "https://evil.example", 403),
    ],
)
async def test_only_the_dev_ui_secret_opens_the_codec_without_a_token(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    ui_secret: str | None,
    path: str,
    client_host: str,
    origin: str,
    status: int,
) -> None:
    # The loopback trust setting of old is gone: setting it changes nothing.
    monkeypatch.setenv("CODEC_TRUST_LOCAL_UI", "true")
    settings = Settings(
        api_token=TOKEN,
        codec_cors_origins=f"{UI},http://localhost:8233",
        temporal_task_queue=task_queue,
    )
    app = create_app(settings, pool=pool, client=client, ui_codec_secret=ui_secret)
    async with in_process_api(app, client_address=(client_host, 50123)) as http:
        response = await http.post(path, json=_body(plain()), headers={"Origin": origin})
        assert response.status_code == status, response.text
        if status == 200:
            assert response.headers["Access-Control-Allow-Origin"] == origin
            preflight = await http.options(
                path, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
            )
            assert preflight.status_code == 204


def test_no_setting_trusts_a_caller_by_its_address_or_origin() -> None:
    assert not [name for name in Settings.model_fields if "trust" in name]


async def test_codec_server_errors_are_clear(api: httpx.AsyncClient) -> None:
    [unknown] = await EncryptionCodec([PayloadKey("retired", bytes(32))]).encode([plain()])
    response = await api.post("/codec/decode", json=_body(unknown), headers=_auth())
    assert response.status_code == 422
    assert response.json()["error"] == "undecodable_payload"
    assert "'retired'" in response.json()["detail"]

    garbage = await api.post(
        "/codec/decode",
        content=b'{"payloads": 3}',
        headers={**_auth(), "Content-Type": "application/json"},
    )
    assert garbage.status_code == 400
    text = await api.post(
        "/codec/decode", content=b"{}", headers={**_auth(), "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/codec")]


def test_cors_origins_default_to_the_embedded_ui_and_refuse_wildcards() -> None:
    assert allowed_origins(Settings(temporal_ui_port=8233)) == {
        "http://127.0.0.1:8233",
        "http://localhost:8233",
    }
    with pytest.raises(ConfigurationError, match="not '\\*'"):
        allowed_origins(Settings(codec_cors_origins="*"))


def test_the_data_converter_for_tests_is_the_products() -> None:
    converter = data_converter_for_keys(f"{NEW.entry()},{OLD.entry()}")
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.key_ids == ("k2", "k1")
