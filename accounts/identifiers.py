"""Normalising and masking the three identifiers an account holds: user name, email, phone.

Normalised forms are what claims compare, so `Alice@Example.COM` and `alice@example.com`
are the same email and `+86 138-0013-8000` and `+8613800138000` the same phone.
"""

from __future__ import annotations

import re
from enum import StrEnum


class IdentifierKind(StrEnum):
    USER_NAME = "user_name"
    EMAIL = "email"
    PHONE = "phone"

    @property
    def label(self) -> str:
        return {"user_name": "user name", "email": "email address", "phone": "phone number"}[
            self.value
        ]


class InvalidIdentifier(ValueError):
    """The value cannot be an identifier of this kind; the message says why, without the value."""

    def __init__(self, kind: IdentifierKind, reason: str) -> None:
        super().__init__(f"invalid {kind.label}: {reason}")
        self.kind = kind
        self.reason = reason


_USER_NAME = re.compile(r"^[a-z][a-z0-9._-]{2,31}$")
_EMAIL_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normalize_user_name(value: str) -> str:
    name = value.strip().lower()
    if not _USER_NAME.fullmatch(name):
        raise InvalidIdentifier(
            IdentifierKind.USER_NAME,
            "use 3 to 32 letters, digits, '.', '_' or '-', starting with a letter",
        )
    return name


def normalize_email(value: str) -> str:
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or len(address) > 254
        or not _EMAIL_LOCAL.fullmatch(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidIdentifier(IdentifierKind.EMAIL, "expected an address like name@example.com")
    return address


def normalize_phone(value: str) -> str:
    """E.164: '+', country code and number, digits only ('00' for '+' is accepted)."""
    number = _PHONE_SEPARATORS.sub("", value.strip())
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _E164.fullmatch(number):
        raise InvalidIdentifier(
            IdentifierKind.PHONE,
            "expected an international number with country code, like +14155550123",
        )
    return number


NORMALIZERS = {
    IdentifierKind.USER_NAME: normalize_user_name,
    IdentifierKind.EMAIL: normalize_email,
    IdentifierKind.PHONE: normalize_phone,
}


def mask_email(address: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com`: enough for the user to recognise it."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """`+8613800138000` -> `+86 *** **** 8000`."""
    digits = number.lstrip("+")
    return f"+{digits[:2]} *** **** {digits[-4:]}"
