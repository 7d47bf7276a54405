"""Normalising and masking the three identifiers an account holds: user name, email, phone.

Normalised forms are what claims compare, so `Alice@Example.COM` and `alice@example.com`
are the same email and `+86 138-0013-8000` and `+8613800138000` the same phone (and
`+44 07911 123456` and `+447911123456`: the trunk prefix 0 is not part of the number).
"""

from __future__ import annotations

import re
from enum import StrEnum

import email_validator
import phonenumbers


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
_PHONE_CHARACTERS = re.compile(r"^\+?[0-9\s().-]+$")
"""Digits, a leading '+' and the usual separators: letters (`+1 415 CALL NOW`) are refused, not
read as a keypad would."""


def normalize_user_name(value: str) -> str:
    name = value.strip().lower()
    if not _USER_NAME.fullmatch(name):
        raise InvalidIdentifier(
            IdentifierKind.USER_NAME,
            "use 3 to 32 letters, digits, '.', '_' or '-', starting with a letter",
        )
    return name


def normalize_email(value: str) -> str:
    """The address as `email-validator` normalises it (Unicode NFC, the domain in its IDNA
    Unicode form, so `jane@xn--fsqu00a.xn--4rr70v` is `jane@例子.广告`), lower-cased whole:
    claims compare addresses case-insensitively, as every mailbox provider that matters does.

    Internationalised addresses (`josé@example.com`, `用户@例子.广告`) are accepted. Syntax only:
    no DNS lookup (`check_deliverability=False`), but the domain must be one that can exist on
    the internet (`jane@localhost` is refused)."""
    try:
        address = email_validator.validate_email(value.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError:
        # The library's reason may quote parts of the address: say why without the value.
        raise InvalidIdentifier(
            IdentifierKind.EMAIL, "expected an address like name@example.com"
        ) from None
    return address.normalized.lower()


def normalize_phone(value: str) -> str:
    """E.164 as libphonenumber (`phonenumbers`) formats it: '+', country code and national
    number without its trunk prefix, so `+44 07911 123456` is `+447911123456`. The number must
    be a valid one of its country's numbering plan; '00' for '+' is accepted."""
    number = value.strip()
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _PHONE_CHARACTERS.fullmatch(number) or not number.startswith("+"):
        raise InvalidIdentifier(
            IdentifierKind.PHONE,
            "expected an international number with country code, like +14155550123",
        )
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise InvalidIdentifier(
            IdentifierKind.PHONE,
            "not a valid phone number: check the country code and the number's digits",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


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
