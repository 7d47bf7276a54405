"""PRODUCTS_FILE: the products a deployment declares beyond the built-in registry. A file that
does not hold together is refused when a worker starts, in one line that names the product and
what is wrong (never the secret), and never halfway through a deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.models import PlannedProduct, ProductDriver
from registry.catalog import ProductsFileError, load_catalog
from registry.products import PRODUCTS
from tests.test_processes import WORKER_COMMANDS, refusal

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VALID = f"""
[[product]]
name = "archive"
title = "Cold-storage archives"
driver = "worker"

[[product]]
name = "mail_relay"
driver = "http"
url = "https://mail-relay.internal/v1/deletions"
secret = "{SECRET}"
live_resources_url = "https://mail-relay.internal/v1/live-resources"

[[product]]
name = "tape_archive"
driver = "manual"
instructions = "Shred the account's tapes in vault B; file the certificate."
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "products.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_declared_products_follow_the_built_in_ones_with_their_drivers(tmp_path: Path) -> None:
    catalog = load_catalog(_file(tmp_path, VALID))
    assert catalog.names() == [p.name for p in PRODUCTS] + ["archive", "mail_relay", "tape_archive"]
    assert catalog.plan()[-3:] == [
        PlannedProduct(name="archive", driver=ProductDriver.WORKER, title="Cold-storage archives"),
        PlannedProduct(name="mail_relay", driver=ProductDriver.HTTP, title="Mail relay"),
        PlannedProduct(
            name="tape_archive",
            driver=ProductDriver.MANUAL,
            title="Tape archive",
            instructions="Shred the account's tapes in vault B; file the certificate.",
        ),
    ]
    relay = catalog.declared_product("mail_relay")
    assert relay is not None and relay.secret == SECRET
    assert SECRET not in repr(relay), "the secret would show wherever the product is logged"
    assert [p.name for p in catalog.of_driver(ProductDriver.WORKER)] == ["archive"]


def test_without_a_file_only_the_built_in_products_are_planned() -> None:
    catalog = load_catalog(None)
    assert catalog.names() == [p.name for p in PRODUCTS]
    assert {p.driver for p in catalog.plan()} == {ProductDriver.SQL}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[product]]\nname = "x1"\ndriver = "ftp"', "product 1 (x1): unknown driver 'ftp'"),
        ('[[product]]\nname = "x1"\ndriver = "sql"', "driver sql is for built-in products"),
        ('[[product]]\nname = "r"\ndriver = "http"', "product 1 (r): driver http needs url"),
        (
            '[[product]]\nname = "r"\ndriver = "http"\nurl = "https://r.internal/d"',
            "product 1 (r): driver http needs secret",
        ),
        ('[[product]]\nname = "t"\ndriver = "manual"', "driver manual needs instructions"),
        (
            '[[product]]\nname = "archive"\ndriver = "worker"\n'
            '[[product]]\nname = "archive"\ndriver = "worker"',
            "product 'archive' is declared twice",
        ),
        ('[[product]]\nname = "compute"\ndriver = "worker"', "product 'compute' is declared twice"),
        ('[[product]]\nname = "Archive!"\ndriver = "worker"', "name 'Archive!' must be lowercase"),
        ('[[product]]\ndriver = "worker"', "product 1: missing name"),
        ('[[product]]\nname = "a"\ndriver = "worker"\nulr = "x"', "unknown key 'ulr'"),
        (
            '[[product]]\nname = "a"\ndriver = "worker"\nurl = "https://a.internal"',
            "url is for driver http, not worker",
        ),
        (
            '[[product]]\nname = "r"\ndriver = "http"\nurl = "ftp://r.internal"\nsecret = "x"',
            "url must be an http(s) URL",
        ),
        ('[[product]]\nname = "a"\ndriver = 3', "driver must be a non-empty string"),
        ('[[products]]\nname = "a"', "unknown table 'products' (only [[product]])"),
        ("[[product]\nname = ", "not valid TOML"),
    ],
)
def test_a_file_that_does_not_hold_together_is_refused_in_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ProductsFileError) as refused:
        load_catalog(_file(tmp_path, text))
    message = str(refused.value)
    assert expected in message
    assert message.startswith(f"PRODUCTS_FILE {tmp_path / 'products.toml'}")
    assert "\n" not in message


def test_a_malformed_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    for secret in ("hunter2-secret", "whsec_", "whsec_!!!!"):
        text = (
            f'[[product]]\nname = "r"\ndriver = "http"\nurl = "https://r.internal/d"\n'
            f'secret = "{secret}"'
        )
        with pytest.raises(ProductsFileError) as refused:
            load_catalog(_file(tmp_path, text))
        assert "secret must be whsec_<base64>" in str(refused.value)
        assert secret not in str(refused.value).replace("whsec_<base64>", "")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProductsFileError, match="cannot read it"):
        load_catalog(tmp_path / "nowhere.toml")


@pytest.mark.parametrize("entry", WORKER_COMMANDS)
async def test_the_worker_refuses_a_bad_products_file_at_start_in_one_line(
    entry: str, tmp_path: Path
) -> None:
    path = _file(tmp_path, '[[product]]\nname = "x1"\ndriver = "ftp"')
    line = await refusal(WORKER_COMMANDS[entry], PRODUCTS_FILE=str(path))
    assert "unknown driver 'ftp'" in line
