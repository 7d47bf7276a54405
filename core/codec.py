"""Encrypted Temporal payloads: an AES-256-GCM `PayloadCodec` with key rotation.

Every payload the product hands to Temporal (workflow input and result, signal, update and query
arguments, activity arguments, results and heartbeats, summaries) and the message and stack
trace of every failure are encrypted before they leave the process, so that the server's
history, its database and whoever reads them see no code, email or phone in clear.

An encrypted payload carries `encoding: binary/encrypted` and `encryption-key-id: <id>` in its
metadata; its data is a 12-byte random nonce followed by the AES-GCM ciphertext (with its tag)
of the whole original payload, metadata included: the layout of temporalio/samples-python's
`encryption` sample, so codec servers written after it read ours.

Keys come from PAYLOAD_KEYS, `id:base64key` entries separated by commas. The first key encrypts;
every listed key decrypts. Rotation: prepend a new key, deploy, and keep the old ones listed
while histories written with them are retained. Payloads without the encrypted encoding (an
operator's plain `temporal workflow signal`, histories recorded before encryption) decode as
they are.

`python -m starter.codec new-key [ID]` prints a new entry to put in PAYLOAD_KEYS.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from core.config import ConfigurationError, Settings

ENCODING = b"binary/encrypted"
"""The `encoding` metadata of an encrypted payload."""
KEY_ID_METADATA = "encryption-key-id"
"""The metadata entry naming the key a payload was encrypted with."""
KEY_BYTES = 32
"""AES-256."""
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CodecError(ValueError):
    """A payload that cannot be decrypted; the message says why and what to do."""


class UnknownKeyError(CodecError):
    """The payload was encrypted with a key id that PAYLOAD_KEYS does not list."""


class PayloadDecryptionError(CodecError):
    """The payload did not authenticate: a wrong key under that id, or altered data."""


@dataclasses.dataclass(frozen=True)
class PayloadKey:
    """One key of PAYLOAD_KEYS. The secret stays out of repr, so it cannot reach a log."""

    id: str
    secret: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not KEY_ID_PATTERN.match(self.id):
            raise ConfigurationError(
                f"key id {self.id!r} is not valid: use 1-64 letters, digits, '.', '_'"
                " or '-', starting with a letter or digit"
            )
        if len(self.secret) != KEY_BYTES:
            raise ConfigurationError(
                f"key {self.id!r} is {len(self.secret)} bytes: it needs"
                f" {KEY_BYTES} (base64 of 32 random bytes)"
            )

    @classmethod
    def generate(cls, key_id: str) -> PayloadKey:
        return cls(key_id, AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    def entry(self) -> str:
        """The `id:base64key` form that PAYLOAD_KEYS lists."""
        return f"{self.id}:{base64.b64encode(self.secret).decode()}"


def parse_payload_keys(text: str, *, setting: str = "PAYLOAD_KEYS") -> tuple[PayloadKey, ...]:
    """Parses PAYLOAD_KEYS (`id:base64key,...`, the first is current), or another setting of
    that form (CODE_HASH_KEY), named by `setting` in the errors.

    Errors name the entry by its position or id, never by its key material.
    """
    keys: list[PayloadKey] = []
    entries = [entry.strip() for entry in text.split(",")]
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ConfigurationError(f"{setting} entry {position} is empty")
        key_id, separator, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        if not separator or not key_id or not encoded:
            raise ConfigurationError(f"{setting} entry {position} is not of the form id:base64key")
        try:
            keys.append(PayloadKey(key_id, _decode_key(key_id, encoded)))
        except ConfigurationError as error:
            raise ConfigurationError(f"{setting}: {error}") from None
    ids = [key.id for key in keys]
    duplicates = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
    if duplicates:
        raise ConfigurationError(f"{setting} lists key id(s) {duplicates} more than once")
    return tuple(keys)


def _decode_key(key_id: str, encoded: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    normalized = encoded.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"key {key_id!r} is not valid base64") from None


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM with rotation: the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        super().__init__()
        if not keys:
            raise ConfigurationError("PAYLOAD_KEYS lists no key")
        self._current = keys[0]
        self._ciphers = {key.id: AESGCM(key.secret) for key in keys}
        if len(self._ciphers) != len(keys):
            raise ConfigurationError("PAYLOAD_KEYS lists a key id more than once")

    @classmethod
    def from_text(cls, text: str) -> EncryptionCodec:
        return cls(parse_payload_keys(text))

    @property
    def current_key_id(self) -> str:
        return self._current.id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._ciphers[self._current.id]
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current.id.encode()},
            data=nonce + cipher.encrypt(nonce, payload.SerializeToString(), None),
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; one without the encrypted encoding is returned as it is."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(
                f"payload encrypted with key id {key_id!r}, which PAYLOAD_KEYS does not list"
                f" (it lists {', '.join(self._ciphers)}): add that key back to PAYLOAD_KEYS,"
                " after the current one, to read it"
            )
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"payload under key id {key_id!r} is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} does not authenticate: PAYLOAD_KEYS has"
                " another key under that id, or the payload was altered"
            ) from None
        return Payload.FromString(plain)


def seal(codec: EncryptionCodec, secret: bytes) -> bytes:
    """A secret kept at rest (an `http` product's activity task token) under PAYLOAD_KEYS, in
    the form of an encrypted payload: rotation works as for payloads."""
    return codec.encrypt(Payload(data=secret)).SerializeToString()


def unseal(codec: EncryptionCodec, sealed: bytes) -> bytes:
    """The secret `seal` kept; CodecError when its key is gone or the data was altered."""
    return codec.decrypt(Payload.FromString(sealed)).data


def encrypted_data_converter(codec: PayloadCodec) -> DataConverter:
    """The pydantic data converter with `codec` on payloads and encoded failure messages.

    `DefaultFailureConverterWithEncodedAttributes` moves each failure's message and stack
    trace into a payload, which the codec then encrypts: the server keeps "Encoded failure".
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def codec_for(settings: Settings) -> EncryptionCodec:
    if settings.payload_keys is None:
        raise ConfigurationError(
            "PAYLOAD_KEYS is not set: Temporal payloads are encrypted with it"
            " (`dev` makes one under DATA_DIR; `python -m starter.codec new-key` prints one)"
        )
    return EncryptionCodec.from_text(settings.payload_keys.get_secret_value())


def data_converter(settings: Settings) -> DataConverter:
    """The converter of every Temporal client, worker and replayer of the product."""
    return encrypted_data_converter(codec_for(settings))


def data_converter_for_keys(keys: str | Sequence[PayloadKey]) -> DataConverter:
    """The same converter from explicit keys (tests, tools reading old histories)."""
    codec = EncryptionCodec.from_text(keys) if isinstance(keys, str) else EncryptionCodec(keys)
    return encrypted_data_converter(codec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m starter.codec")
    commands = parser.add_subparsers(dest="command", required=True)
    new_key = commands.add_parser("new-key", help="print a new `id:base64key` PAYLOAD_KEYS entry")
    new_key.add_argument("id", nargs="?", help="the key id (default: k<today's date>)")
    args = parser.parse_args(argv)
    key_id = args.id or f"k{datetime.now(UTC):%Y%m%d}"
    try:
        sys.stdout.write(PayloadKey.generate(key_id).entry() + "\n")
    except ConfigurationError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
