"""The stored form of a verification code: HMAC-SHA256 under CODE_HASH_KEY.

A code has six to eight digits: at most 10^8 candidates, so no hash stored next to it can be
slow enough to hold out against whoever reads the challenges table (scrypt made every deletion
pay ~200 ms of CPU and still fell to an offline search of the million six-digit codes). The
key is what protects the codes: it lives outside the database (CODE_HASH_KEY), so the table
alone does not let anyone test a candidate, and an HMAC costs microseconds.

Each challenge records its `scheme` and, for HMAC, the id of its key (`key_id`). The first key
of CODE_HASH_KEY hashes new codes; every listed key still checks the challenges it hashed, so a
new key can be put first while codes issued under the old one are outstanding. Challenges
issued before migration 0007 are `scrypt` (salted, bound to the challenge id) and are still
checked that way until they expire (minutes).

The message is `<challenge id>:<code>`: a hash is bound to its challenge, so it cannot be moved
to another deletion's row.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from core.codec import PayloadKey, parse_payload_keys
from core.config import ConfigurationError, Settings

HMAC_SHA256 = "hmac-sha256"
SCRYPT = "scrypt"
"""Challenges issued before CODE_HASH_KEY (the column's default: what older workers write)."""


@dataclass(frozen=True)
class CodeHash:
    """A code's stored form: the columns `scheme`, `key_id`, `salt`, `code_hash`."""

    scheme: str
    key_id: str | None
    salt: bytes | None
    digest: bytes


def scrypt_hash(code: str, salt: bytes, challenge_id: str) -> bytes:
    """The hash of challenges issued before CODE_HASH_KEY (~70 ms of CPU by design)."""
    return hashlib.scrypt(f"{challenge_id}:{code}".encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


class CodeHasher:
    """Hashes new codes under the first key, checks stored ones under the key they name."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise ConfigurationError("CODE_HASH_KEY lists no key")
        self._current = keys[0].id
        self._keys = {key.id: key.secret for key in keys}

    @classmethod
    def from_text(cls, text: str) -> CodeHasher:
        return cls(parse_payload_keys(text, setting="CODE_HASH_KEY"))

    @property
    def current_key_id(self) -> str:
        return self._current

    def hash(self, code: str, challenge_id: str) -> CodeHash:
        """The stored form of a new code: HMAC under the current key, no salt needed."""
        digest = self._hmac(self._keys[self._current], code, challenge_id)
        return CodeHash(HMAC_SHA256, self._current, None, digest)

    def can_check(self, stored: CodeHash) -> bool:
        """False for an HMAC under a key CODE_HASH_KEY no longer lists (or an unknown scheme):
        such a code can never be accepted again."""
        if stored.scheme == SCRYPT:
            return stored.salt is not None
        return stored.scheme == HMAC_SHA256 and stored.key_id in self._keys

    async def matches(self, code: str, challenge_id: str, stored: CodeHash) -> bool:
        """Whether `code` is the stored one, compared in constant time; a code that cannot be
        checked (see `can_check`) is hashed under the current key all the same, so every
        answer costs the same, and never matches."""
        if stored.scheme == SCRYPT and stored.salt is not None:
            # In a thread: on the event loop scrypt would stall every other task meanwhile.
            digest = await asyncio.to_thread(scrypt_hash, code, stored.salt, challenge_id)
        else:
            key = self._keys.get(stored.key_id or "", self._keys[self._current])
            digest = self._hmac(key, code, challenge_id)
        return hmac.compare_digest(digest, stored.digest) and self.can_check(stored)

    @staticmethod
    def _hmac(key: bytes, code: str, challenge_id: str) -> bytes:
        return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).digest()


def code_hasher_for(settings: Settings) -> CodeHasher:
    """The worker's hasher; without CODE_HASH_KEY it refuses, in one line."""
    if settings.code_hash_key is None or not settings.code_hash_key.get_secret_value().strip():
        raise ConfigurationError(
            "CODE_HASH_KEY is not set: verification codes are hashed with it"
            " (`python -m core.codec new-key` prints one; `dev` makes its own)"
        )
    return CodeHasher.from_text(settings.code_hash_key.get_secret_value())
